// Sums and means over axes, and the broadcast/reduce pair that broadcasting's backward needs.

import Foundation

extension Tensor {
    /// Sums over `axes`, keeping them as extent-1 axes. Accumulates each contiguous run in Double.
    static func reduceSumKeepingDims(_ x: Tensor, axes: Set<Int>) -> Tensor {
        let keptShape = x.shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
        let out = Tensor(zeros: keptShape)
        if x.count == 0 { return out }
        let (dims, sx, so) = collapsedBroadcast(x.shape, x.shape, keptShape)
        let inner = dims.last!, innerOut = so.last!
        let rows = x.count / inner
        let src = x.pointer, dst = out.pointer
        for row in 0..<rows {
            var rem = row, ox = 0, oo = 0
            for k in stride(from: dims.count - 2, through: 0, by: -1) {
                let i = rem % dims[k]
                rem /= dims[k]
                ox += i * sx[k]
                oo += i * so[k]
            }
            let s = src + ox, d = dst + oo
            if innerOut == 0 {
                var acc: Double = 0
                for j in 0..<inner { acc += Double(s[j]) }
                d[0] += Float(acc)
            } else {
                for j in 0..<inner { d[j] += s[j] }
            }
        }
        return out
    }

    /// Sum over `axes` (negative axes count from the end).
    ///
    /// - Parameters:
    ///   - axes: the axes to reduce; all axes when empty is not what you want, use `sum()`.
    ///   - keepDims: keep reduced axes with extent 1 (as PyTorch's `keepdim=True`).
    public func sum(axes: [Int], keepDims: Bool = false) -> Tensor {
        let set = Set(axes.map { normalizedAxis($0) })
        let kept = Tensor.reduceSumKeepingDims(self, axes: set)
        let shape = keepDims ? kept.shape : self.shape.enumerated().filter { !set.contains($0.offset) }.map(\.element)
        let out = Tensor(shape: shape, sharing: kept.storage)
        let inputShape = self.shape, keptShape = kept.shape
        return out.recorded("sum", [self]) { g in
            [g.reshaped(keptShape).expanded(to: inputShape)]
        }
    }

    /// Sum over one axis.
    public func sum(axis: Int, keepDims: Bool = false) -> Tensor { sum(axes: [axis], keepDims: keepDims) }

    /// Mean over `axes`.
    public func mean(axes: [Int], keepDims: Bool = false) -> Tensor {
        let n = axes.map { size($0) }.reduce(1, *)
        return sum(axes: axes, keepDims: keepDims) * (1 / Float(n))
    }

    /// Mean over one axis.
    public func mean(axis: Int, keepDims: Bool = false) -> Tensor { mean(axes: [axis], keepDims: keepDims) }

    /// The sum of all elements, as a shape-`[]` tensor.
    public func sum() -> Tensor {
        var acc: Double = 0
        let p = pointer
        for i in 0..<count { acc += Double(p[i]) }
        let inputShape = shape
        return Tensor(Float(acc)).recorded("sumAll", [self]) { g in
            [Tensor(shape: inputShape, repeating: g.item)]
        }
    }

    /// The mean of all elements, as a shape-`[]` tensor.
    public func mean() -> Tensor { sum() * (1 / Float(Swift.max(count, 1))) }

    /// Sums a broadcast result back to `shape` (the backward of broadcasting): leading axes that `shape`
    /// lacks are summed away, axes where `shape` has extent 1 are summed with keepDims.
    public func sumTo(_ shape: [Int]) -> Tensor {
        if self.shape == shape { return self }
        let lead = rank - shape.count
        precondition(lead >= 0, "sumTo: cannot reduce \(self.shape) to \(shape)")
        var axes: [Int] = Array(0..<lead)
        for (i, e) in shape.enumerated() where e == 1 && self.shape[lead + i] != 1 { axes.append(lead + i) }
        if axes.isEmpty { return reshaped(shape) }
        return sum(axes: axes, keepDims: true).reshaped(shape)
    }

    /// Repeats extent-1 (or missing leading) axes to reach `shape`, as PyTorch's `expand` but materialised.
    public func expanded(to shape: [Int]) -> Tensor {
        if self.shape == shape { return self }
        precondition(shape.count >= rank && Tensor.broadcastShape(self.shape, shape) == shape,
                     "expanded: \(self.shape) does not broadcast to \(shape)")
        let out = Tensor(uninitialized: shape)
        let (dims, _, ss) = Tensor.collapsedBroadcast(shape, shape, self.shape)
        let inner = dims.last!, innerStride = ss.last!
        let rows = out.count / Swift.max(inner, 1)
        let src = pointer, dst = out.pointer
        Parallel.forEach(rows, cost: inner) { r in
            for row in r {
                var rem = row, os = 0
                for k in stride(from: dims.count - 2, through: 0, by: -1) {
                    let i = rem % dims[k]
                    rem /= dims[k]
                    os += i * ss[k]
                }
                let d = dst + row * inner, s = src + os
                if innerStride == 0 { d.update(repeating: s[0], count: inner) } else { d.update(from: s, count: inner) }
            }
        }
        let inputShape = self.shape
        return out.recorded("expand", [self]) { g in [g.sumTo(inputShape)] }
    }
}
