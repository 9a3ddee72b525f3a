// Element-wise arithmetic with NumPy/PyTorch broadcasting, scalar arithmetic and unary math.
//
// Each op: forward kernel over contiguous buffers, split across cores; backward reuses the same kernels,
// and a broadcast input's gradient is summed back to its shape with `sumTo`. Ops whose backward reads their own
// output capture `out.detached()` (same storage, no history): capturing `out` would make a reference cycle
// out → node → closure → out that leaks every graph that is built but never back-propagated.

import Foundation

// MARK: - Kernels (internal)

extension Tensor {
    /// `out[i] = op(x[i])` over all elements, in parallel. A fresh tensor shaped like `x`.
    @inline(__always)
    static func map(_ x: Tensor, _ op: (Float) -> Float) -> Tensor {
        let out = Tensor(uninitialized: x.shape)
        let s = x.pointer, d = out.pointer
        Parallel.forEach(x.count) { r in for i in r { d[i] = op(s[i]) } }
        return out
    }

    /// `out[i] = op(a[i], b[i])` for two tensors with the same element count, in parallel.
    @inline(__always)
    static func zipMap(_ a: Tensor, _ b: Tensor, shape: [Int]? = nil, _ op: (Float, Float) -> Float) -> Tensor {
        precondition(a.count == b.count, "element-wise op: \(a.shape) and \(b.shape) differ in size")
        let out = Tensor(uninitialized: shape ?? a.shape)
        let x = a.pointer, y = b.pointer, d = out.pointer
        Parallel.forEach(a.count) { r in for i in r { d[i] = op(x[i], y[i]) } }
        return out
    }

    /// `out[i] = op(a[i], b[i], c[i])` for three tensors with the same element count, in parallel.
    @inline(__always)
    static func zipMap3(_ a: Tensor, _ b: Tensor, _ c: Tensor, _ op: (Float, Float, Float) -> Float) -> Tensor {
        precondition(a.count == b.count && b.count == c.count, "element-wise op: sizes differ")
        let out = Tensor(uninitialized: a.shape)
        let x = a.pointer, y = b.pointer, z = c.pointer, d = out.pointer
        Parallel.forEach(a.count) { r in for i in r { d[i] = op(x[i], y[i], z[i]) } }
        return out
    }

    /// The broadcast shape of two shapes (trailing axes aligned; an extent of 1 stretches).
    public static func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int] {
        let rank = max(a.count, b.count)
        var out = [Int](repeating: 1, count: rank)
        for i in 0..<rank {
            let x = i < rank - a.count ? 1 : a[i - (rank - a.count)]
            let y = i < rank - b.count ? 1 : b[i - (rank - b.count)]
            precondition(x == y || x == 1 || y == 1, "cannot broadcast shapes \(a) and \(b)")
            out[i] = x == 1 ? y : x
        }
        return out
    }

    /// `op` applied with broadcasting. Shapes are collapsed so that the innermost loop runs over the longest
    /// run that is contiguous (stride 1) or constant (stride 0) in both operands.
    @inline(__always)
    static func broadcastMap(_ a: Tensor, _ b: Tensor, _ op: (Float, Float) -> Float) -> Tensor {
        if a.shape == b.shape { return zipMap(a, b, op) }
        let outShape = broadcastShape(a.shape, b.shape)
        let out = Tensor(uninitialized: outShape)
        let (dims, sa, sb) = collapsedBroadcast(outShape, a.shape, b.shape)
        let inner = dims.last ?? 1, ia = sa.last ?? 0, ib = sb.last ?? 0
        let rows = out.count / max(inner, 1)
        let x = a.pointer, y = b.pointer, d = out.pointer
        Parallel.forEach(rows, cost: inner) { r in
            for row in r {
                // Offsets of this row in a and b: decompose `row` over the outer dims.
                var rem = row, oa = 0, ob = 0
                for k in stride(from: dims.count - 2, through: 0, by: -1) {
                    let i = rem % dims[k]
                    rem /= dims[k]
                    oa += i * sa[k]
                    ob += i * sb[k]
                }
                let o = d + row * inner, xa = x + oa, yb = y + ob
                switch (ia, ib) {
                case (1, 1): for j in 0..<inner { o[j] = op(xa[j], yb[j]) }
                case (1, 0): let v = yb[0]; for j in 0..<inner { o[j] = op(xa[j], v) }
                case (0, 1): let v = xa[0]; for j in 0..<inner { o[j] = op(v, yb[j]) }
                default: let v = op(xa[0], yb[0]); for j in 0..<inner { o[j] = v }
                }
            }
        }
        return out
    }

    /// Collapses `outShape` and the two operands' broadcast strides into as few axes as possible.
    /// Returns the collapsed extents and each operand's strides (0 on broadcast axes).
    static func collapsedBroadcast(_ outShape: [Int], _ a: [Int], _ b: [Int]) -> ([Int], [Int], [Int]) {
        func aligned(_ s: [Int]) -> [Int] {
            let padded = [Int](repeating: 1, count: outShape.count - s.count) + s
            let st = Tensor.strides(of: padded)
            return zip(padded, st).map { $0.0 == 1 ? 0 : $0.1 }
        }
        let sa = aligned(a), sb = aligned(b)
        var dims: [Int] = [], ca: [Int] = [], cb: [Int] = []
        for i in 0..<outShape.count where outShape[i] != 1 {
            if let last = dims.last,
               ca.last! == sa[i] * outShape[i] || (ca.last! == 0 && sa[i] == 0),
               cb.last! == sb[i] * outShape[i] || (cb.last! == 0 && sb[i] == 0) {
                dims[dims.count - 1] = last * outShape[i]
                ca[ca.count - 1] = sa[i]
                cb[cb.count - 1] = sb[i]
            } else {
                dims.append(outShape[i]); ca.append(sa[i]); cb.append(sb[i])
            }
        }
        if dims.isEmpty { return ([1], [0], [0]) }
        return (dims, ca, cb)
    }
}

// MARK: - Binary ops with broadcasting

extension Tensor {
    /// Element-wise sum with broadcasting. Shapes: any two broadcast-compatible shapes.
    public static func + (a: Tensor, b: Tensor) -> Tensor {
        broadcastMap(a, b, +).recorded("add", [a, b]) { g in
            [a.requiresGrad ? g.sumTo(a.shape) : nil, b.requiresGrad ? g.sumTo(b.shape) : nil]
        }
    }

    /// Element-wise difference with broadcasting.
    public static func - (a: Tensor, b: Tensor) -> Tensor {
        broadcastMap(a, b, -).recorded("sub", [a, b]) { g in
            [a.requiresGrad ? g.sumTo(a.shape) : nil, b.requiresGrad ? Tensor.map(g.sumTo(b.shape), -) : nil]
        }
    }

    /// Element-wise product with broadcasting.
    public static func * (a: Tensor, b: Tensor) -> Tensor {
        broadcastMap(a, b, *).recorded("mul", [a, b]) { g in
            [a.requiresGrad ? broadcastMap(g, b, *).sumTo(a.shape) : nil,
             b.requiresGrad ? broadcastMap(g, a, *).sumTo(b.shape) : nil]
        }
    }

    /// Element-wise quotient with broadcasting.
    public static func / (a: Tensor, b: Tensor) -> Tensor {
        broadcastMap(a, b, /).recorded("div", [a, b]) { g in
            var ga: Tensor? = nil, gb: Tensor? = nil
            if a.requiresGrad { ga = broadcastMap(g, b, /).sumTo(a.shape) }
            if b.requiresGrad {
                // d(a/b)/db = -a / b²
                let q = broadcastMap(broadcastMap(g, a, *), b, /)
                gb = broadcastMap(q, b, { x, y in -x / y }).sumTo(b.shape)
            }
            return [ga, gb]
        }
    }

    /// Element-wise maximum with broadcasting; the gradient goes to `a` where `a >= b`, else to `b`.
    public static func maximum(_ a: Tensor, _ b: Tensor) -> Tensor {
        broadcastMap(a, b, { Swift.max($0, $1) }).recorded("maximum", [a, b]) { g in
            let takeA = broadcastMap(a, b, { $0 >= $1 ? 1 : 0 })
            return [a.requiresGrad ? broadcastMap(g, takeA, *).sumTo(a.shape) : nil,
                    b.requiresGrad ? broadcastMap(g, takeA, { x, t in x * (1 - t) }).sumTo(b.shape) : nil]
        }
    }
}

// MARK: - Scalar ops

extension Tensor {
    /// `a + s` element-wise; the result has `a`'s shape (as every scalar op below).
    public static func + (a: Tensor, s: Float) -> Tensor {
        map(a) { $0 + s }.recorded("addScalar", [a]) { g in [g] }
    }
    /// `s + a` element-wise.
    public static func + (s: Float, a: Tensor) -> Tensor { a + s }
    /// `a − s` element-wise.
    public static func - (a: Tensor, s: Float) -> Tensor { a + (-s) }
    /// `s − a` element-wise.
    public static func - (s: Float, a: Tensor) -> Tensor {
        map(a) { s - $0 }.recorded("rsubScalar", [a]) { g in [map(g, -)] }
    }
    /// `a · s` element-wise.
    public static func * (a: Tensor, s: Float) -> Tensor {
        map(a) { $0 * s }.recorded("mulScalar", [a]) { g in [map(g) { $0 * s }] }
    }
    /// `s · a` element-wise.
    public static func * (s: Float, a: Tensor) -> Tensor { a * s }
    /// `a / s` element-wise.
    public static func / (a: Tensor, s: Float) -> Tensor { a * (1 / s) }
    /// `−a` element-wise.
    public static prefix func - (a: Tensor) -> Tensor { a * -1 }

    /// `self` raised to a constant power (element-wise).
    public func pow(_ p: Float) -> Tensor {
        let x = self
        return Tensor.map(x) { Foundation.pow($0, p) }.recorded("powScalar", [x]) { g in
            [Tensor.zipMap(g, x) { gi, xi in gi * p * Foundation.pow(xi, p - 1) }]
        }
    }

    /// `min(max(self, lo), hi)`; the gradient passes where the value was not clipped.
    public func clamped(_ lo: Float, _ hi: Float) -> Tensor {
        let x = self
        return Tensor.map(x) { Swift.min(Swift.max($0, lo), hi) }.recorded("clamp", [x]) { g in
            [Tensor.zipMap(g, x) { gi, xi in xi >= lo && xi <= hi ? gi : 0 }]
        }
    }
}

// MARK: - Unary math

extension Tensor {
    /// `eˣ`, element-wise.
    public func exp() -> Tensor {
        let out = Tensor.map(self) { Foundation.exp($0) }, y = out.detached()
        return out.recorded("exp", [self]) { g in [Tensor.zipMap(g, y, *)] }
    }

    /// Natural logarithm, element-wise.
    public func log() -> Tensor {
        let x = self
        return Tensor.map(x) { Foundation.log($0) }.recorded("log", [x]) { g in [Tensor.zipMap(g, x, /)] }
    }

    /// `|x|`, element-wise; the gradient at 0 is 0 (PyTorch's sign convention).
    public func abs() -> Tensor {
        let x = self
        return Tensor.map(x) { Swift.abs($0) }.recorded("abs", [x]) { g in
            [Tensor.zipMap(g, x) { gi, xi in xi > 0 ? gi : (xi < 0 ? -gi : 0) }]
        }
    }

    /// `√x`, element-wise.
    public func sqrt() -> Tensor {
        let out = Tensor.map(self) { $0.squareRoot() }, y = out.detached()
        return out.recorded("sqrt", [self]) { g in [Tensor.zipMap(g, y) { gi, yi in gi / (2 * yi) }] }
    }

    /// `x²`, element-wise.
    public func square() -> Tensor {
        let x = self
        return Tensor.map(x) { $0 * $0 }.recorded("square", [x]) { g in [Tensor.zipMap(g, x) { 2 * $0 * $1 }] }
    }
}

// MARK: - Activations

extension Tensor {
    /// `max(x, 0)`.
    public func relu() -> Tensor {
        let out = Tensor.map(self) { Swift.max($0, 0) }, y = out.detached()
        return out.recorded("relu", [self]) { g in [Tensor.zipMap(g, y) { gi, yi in yi > 0 ? gi : 0 }] }
    }

    /// `x` for positive x, `slope·x` otherwise (PyTorch's default slope 0.01).
    public func leakyRelu(_ slope: Float = 0.01) -> Tensor {
        let x = self
        return Tensor.map(x) { $0 > 0 ? $0 : slope * $0 }.recorded("leakyRelu", [x]) { g in
            [Tensor.zipMap(g, x) { gi, xi in xi > 0 ? gi : slope * gi }]
        }
    }

    /// `1 / (1 + e⁻ˣ)`.
    public func sigmoid() -> Tensor {
        let out = Tensor.map(self) { 1 / (1 + Foundation.exp(-$0)) }, y = out.detached()
        return out.recorded("sigmoid", [self]) { g in [Tensor.zipMap(g, y) { gi, yi in gi * yi * (1 - yi) }] }
    }

    /// `tanh(x)`.
    public func tanh() -> Tensor {
        let out = Tensor.map(self) { Foundation.tanh($0) }, y = out.detached()
        return out.recorded("tanh", [self]) { g in [Tensor.zipMap(g, y) { gi, yi in gi * (1 - yi * yi) }] }
    }

    /// GELU with the exact error function, `x·Φ(x) = x/2·(1 + erf(x/√2))` (PyTorch's default).
    public func gelu() -> Tensor {
        let x = self
        let out = Tensor(uninitialized: shape)
        let s = x.pointer, d = out.pointer
        // The C row kernel: 8 lanes with FMA where the CPU has AVX2 (GELU was ~10 % of a Uformer forward).
        Parallel.forEach(count, cost: 8) { r in VectorRows.gelu(d + r.lowerBound, s + r.lowerBound, count: r.count) }
        return out.recorded("gelu", [x]) { g in
            let gx = Tensor(uninitialized: x.shape)
            let gp = g.pointer, xp = x.pointer, dp = gx.pointer
            Parallel.forEach(x.count, cost: 10) { r in
                VectorRows.geluBackward(dp + r.lowerBound, gp + r.lowerBound, xp + r.lowerBound, count: r.count)
            }
            return [gx]
        }
    }
}

/// `x·Φ(x)` with the exact normal CDF (erf from `FastMath`, within 1e-6 of libm's).
@inline(__always) package func geluForward(_ x: Float) -> Float { FastMath.gelu(x) }

/// `d/dx x·Φ(x) = Φ(x) + x·φ(x)`.
@inline(__always) package func geluDerivative(_ x: Float) -> Float { FastMath.geluAndSlope(x).slope }
