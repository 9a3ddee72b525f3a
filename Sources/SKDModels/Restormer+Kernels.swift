// The two fused kernels of Restormer's transformer block: the core of MDTA (transposed, channel-wise
// attention) and the GELU gate of GDFN.
//
// Both read their input where the preceding depthwise convolution wrote it, so the `chunk` copies of the
// official code (q/k/v, x1/x2) never happen, and MDTA does not even materialise the L2-normalised q and k:
//   q̂ᵢ·k̂ⱼ = (qᵢ·kⱼ) · rqᵢ · rkⱼ  with  rq = 1 / max(‖q‖, ε)
// so the Gram matrix is one GEMM straight out of the qkv buffer, rescaled by the inverse norms. At 512×512
// that saves three C×H×W copies and two normalised C×H×W tensors per block, in the forward and the backward.

import Foundation
import SKDTensor

extension Tensor {
    /// The attention core of Restormer's MDTA block, after the qkv convolutions and before `project_out`:
    /// per head, `softmax(normalize(q) · normalize(k)ᵀ · temperature) · v`, with q, k normalised over the
    /// pixels (`F.normalize(dim=-1)`, ε = 1e-12).
    ///
    /// Equivalent to the official `chunk(3) → rearrange 'b (head c) h w -> b head c (h w)' → normalize →
    /// (q @ kᵀ) * temperature → softmax → @ v → rearrange back`, without the copies.
    ///
    /// - Parameters:
    ///   - qkv: `[B, 3·C, H, W]`, channels `[q | k | v]`, each split into `heads` groups of `C / heads` channels.
    ///   - temperature: `[heads, 1, 1]` (any shape with `heads` elements), one logit scale per head.
    ///   - heads: the number of heads; must divide `C`.
    /// - Returns: `[B, C, H, W]`, head `h` in channels `h·C/heads ..< (h+1)·C/heads`.
    package static func mdtaAttention(qkv: Tensor, temperature: Tensor, heads: Int) -> Tensor {
        precondition(qkv.rank == 4 && qkv.shape[1] % 3 == 0,
                     "mdtaAttention: qkv must be [B, 3·C, H, W], got \(qkv.shape)")
        let batch = qkv.shape[0], dim = qkv.shape[1] / 3, n = qkv.shape[2] * qkv.shape[3]
        precondition(heads > 0 && dim % heads == 0, "mdtaAttention: \(heads) heads do not divide \(dim) channels")
        precondition(temperature.count == heads,
                     "mdtaAttention: temperature \(temperature.shape) must hold one value per head (\(heads))")
        let c = dim / heads, groups = batch * heads, cc = c * c
        let src = qkv.pointer, temp = temperature.pointer

        // Inverse norms of every q row and k row, [B, 2·C]; `active` is 0 where the ε clamp is hit
        // (there the norm is a constant and contributes nothing to the gradient).
        let inverse = Tensor(uninitialized: [batch, 2 * dim])
        let active = Tensor(uninitialized: [batch, 2 * dim])
        let inv = inverse.pointer, act = active.pointer
        Parallel.forEach(batch * 2 * dim, cost: n) { rows in
            for r in rows {
                let b = r / (2 * dim), ch = r % (2 * dim)
                let norm = sumOfSquares(src + (b * 3 * dim + ch) * n, n).squareRoot()
                if norm > 1e-12 {
                    inv[r] = Float(1 / norm); act[r] = 1
                } else {
                    inv[r] = 1e12; act[r] = 0
                }
            }
        }

        // Cosine similarities (before the temperature) and the attention maps, [B, heads, c, c] each.
        let cosine = Tensor(uninitialized: [batch, heads, c, c])
        let attention = Tensor(uninitialized: [batch, heads, c, c])
        let cs = cosine.pointer, at = attention.pointer
        for g in 0..<groups {
            let b = g / heads, h = g % heads
            let q = src + (b * 3 * dim + h * c) * n, k = q + dim * n
            BLAS.sgemm(transB: true, m: c, n: c, k: n, a: q, b: k, c: cs + g * cc)
        }
        for g in 0..<groups {
            let b = g / heads, h = g % heads
            let rq = inv + b * 2 * dim + h * c, rk = rq + dim
            let s = cs + g * cc, a = at + g * cc, t = temp[h]
            for i in 0..<c {
                let row = s + i * c, out = a + i * c
                for j in 0..<c {
                    row[j] *= rq[i] * rk[j]
                    out[j] = row[j] * t
                }
                VectorRows.softmaxRow(out, out, count: c)
            }
        }

        let out = Tensor(uninitialized: [batch, dim, qkv.shape[2], qkv.shape[3]])
        for g in 0..<groups {
            let b = g / heads, h = g % heads
            let v = src + (b * 3 * dim + 2 * dim + h * c) * n
            BLAS.sgemm(m: c, n: n, k: c, a: at + g * cc, b: v, c: out.pointer + (b * dim + h * c) * n)
        }

        return out.recorded("mdtaAttention", [qkv, temperature]) { [inverse, active, cosine, attention] grad in
            // Pointers again from the captured tensors: the captures are what keep the buffers alive.
            let src = qkv.pointer, temp = temperature.pointer, inv = inverse.pointer, act = active.pointer
            let cs = cosine.pointer, at = attention.pointer, gp = grad.pointer
            let dA = Tensor(uninitialized: [c, c])
            let dS = Tensor(uninitialized: [c, c])
            let scaled = Tensor(uninitialized: [c, c])
            let dTemperature = Tensor(zeros: temperature.shape)
            let gqkv = qkv.requiresGrad ? Tensor(uninitialized: qkv.shape) : nil
            // Per q/k row: dx = scale·(Σ …) − shift·x, with the GEMM part written first.
            let rowScale = Tensor(uninitialized: [batch, 2 * dim])
            let rowShift = Tensor(uninitialized: [batch, 2 * dim])
            let da = dA.pointer, ds = dS.pointer, sc = scaled.pointer, dt = dTemperature.pointer
            let rs = rowScale.pointer, rh = rowShift.pointer

            for g in 0..<groups {
                let b = g / heads, h = g % heads
                let q = src + (b * 3 * dim + h * c) * n, k = q + dim * n, v = k + dim * n
                let go = gp + (b * dim + h * c) * n
                let a = at + g * cc, s = cs + g * cc, t = temp[h]
                // dA = G·vᵀ; dv = Aᵀ·G.
                BLAS.sgemm(transB: true, m: c, n: c, k: n, a: go, b: v, c: da)
                if let gqkv {
                    BLAS.sgemm(transA: true, m: c, n: n, k: c, a: a, b: go,
                               c: gqkv.pointer + (b * 3 * dim + 2 * dim + h * c) * n)
                }
                // Softmax backward, then through the temperature: dS = t·A⊙(dA − Σⱼ dA⊙A).
                var dTemp: Double = 0
                for i in 0..<c {
                    var dot: Float = 0
                    for j in 0..<c { dot += da[i * c + j] * a[i * c + j] }
                    for j in 0..<c {
                        let dz = a[i * c + j] * (da[i * c + j] - dot)
                        dTemp += Double(dz * s[i * c + j])
                        ds[i * c + j] = dz * t
                    }
                }
                dt[h] += Float(dTemp)
                guard let gqkv else { continue }

                // S = diag(rq)·(q·kᵀ)·diag(rk):
                //   dqᵢ = rqᵢ·Σⱼ dSᵢⱼ rkⱼ kⱼ − rqᵢ²·(Σⱼ dSᵢⱼ Sᵢⱼ)·qᵢ   (second term only where ‖qᵢ‖ > ε)
                //   dkⱼ = rkⱼ·Σᵢ dSᵢⱼ rqᵢ qᵢ − rkⱼ²·(Σᵢ dSᵢⱼ Sᵢⱼ)·kⱼ
                let base = b * 2 * dim + h * c
                let rq = inv + base, rk = rq + dim, aq = act + base, ak = aq + dim
                for i in 0..<c {
                    var sigma: Float = 0
                    for j in 0..<c {
                        sigma += ds[i * c + j] * s[i * c + j]
                        sc[i * c + j] = ds[i * c + j] * rk[j]
                    }
                    rs[base + i] = rq[i]
                    rh[base + i] = rq[i] * rq[i] * aq[i] * sigma
                }
                BLAS.sgemm(m: c, n: n, k: c, a: sc, b: k, c: gqkv.pointer + (b * 3 * dim + h * c) * n)
                for j in 0..<c {
                    var sigma: Float = 0
                    for i in 0..<c { sigma += ds[i * c + j] * s[i * c + j] }
                    rs[base + dim + j] = rk[j]
                    rh[base + dim + j] = rk[j] * rk[j] * ak[j] * sigma
                }
                for i in 0..<c { for j in 0..<c { sc[i * c + j] = ds[i * c + j] * rq[i] } }
                BLAS.sgemm(transA: true, m: c, n: n, k: c, a: sc, b: q,
                           c: gqkv.pointer + (b * 3 * dim + dim + h * c) * n)
            }

            if let gqkv {
                let gq = gqkv.pointer
                Parallel.forEach(batch * 2 * dim, cost: n) { rows in
                    for r in rows {
                        let b = r / (2 * dim), ch = r % (2 * dim)
                        let offset = (b * 3 * dim + ch) * n
                        let d = gq + offset, x = src + offset
                        let scale = rs[r], shift = rh[r]
                        for p in 0..<n { d[p] = scale * d[p] - shift * x[p] }
                    }
                }
            }
            return [gqkv, temperature.requiresGrad ? dTemperature : nil]
        }
    }

    /// Σ x², accumulated in Float blocks folded into a Double, so a 512×512 row keeps float32 accuracy.
    private static func sumOfSquares(_ x: UnsafeMutablePointer<Float>, _ n: Int) -> Double {
        var total: Double = 0
        var start = 0
        while start < n {
            let end = Swift.min(start + 4096, n)
            var block: Float = 0
            for p in start..<end { block += x[p] * x[p] }
            total += Double(block)
            start = end
        }
        return total
    }

    /// The gate of Restormer's GDFN: `gelu(x₁) · x₂` where `x₁, x₂ = x.chunk(2, dim=1)` (exact, erf GELU).
    ///
    /// - Parameter self: `[B, 2·C, H, W]`.
    /// - Returns: `[B, C, H, W]`.
    package func gdfnGate() -> Tensor {
        precondition(rank == 4 && shape[1] % 2 == 0, "gdfnGate: input must be [B, 2·C, H, W], got \(shape)")
        let batch = shape[0], hidden = shape[1] / 2, n = shape[2] * shape[3]
        let out = Tensor(uninitialized: [batch, hidden, shape[2], shape[3]])
        let x = pointer, d = out.pointer
        Parallel.forEach(batch * hidden, cost: n * 8) { rows in
            for r in rows {
                let x1 = x + ((r / hidden) * 2 * hidden + r % hidden) * n, x2 = x1 + hidden * n
                let o = d + r * n
                VectorRows.geluGate(o, x1, x2, count: n)
            }
        }
        let input = self
        return out.recorded("gdfnGate", [input]) { grad in
            let gx = Tensor(uninitialized: input.shape)
            let x = input.pointer, g = grad.pointer, dx = gx.pointer
            Parallel.forEach(batch * hidden, cost: n * 10) { rows in
                for r in rows {
                    let offset = ((r / hidden) * 2 * hidden + r % hidden) * n
                    let x1 = x + offset, x2 = x1 + hidden * n, d1 = dx + offset, d2 = d1 + hidden * n
                    VectorRows.geluGateBackward(d1, d2, g + r * n, x1, x2, count: n)
                }
            }
            return [gx]
        }
    }
}

// MARK: - Inference: depthwise 3×3 convolution fused with the gate

extension Tensor {
    /// GDFN's `gelu(x₁) · x₂` with `x₁, x₂ = depthwise3×3(x).chunk(2, dim=1)`, in one pass and without gradient:
    /// each output row is gated straight from the two convolved rows, which live in a per-thread scratch, so the
    /// `[B, 2·C, H, W]` convolution output is never written or read back (at 512×512 that is 2× 356 MB of
    /// traffic and one fresh allocation per block for restormer-s). The convolution and the gate are the row kernels
    /// of `conv2d`'s depthwise path and of `gdfnGate` (bias, then the kernel rows), so the result equals the composed
    /// ops.
    ///
    /// Use it only when no gradient is needed (it records nothing); `RestormerFeedForward` switches to it
    /// by itself under `noGrad` or for frozen weights and inputs.
    ///
    /// - Parameters:
    ///   - x: `[B, 2·C, H, W]` (the output of `project_in`).
    ///   - weight: `[2·C, 1, 3, 3]`, the depthwise kernel (stride 1, padding 1).
    ///   - bias: `[2·C]` or `nil`.
    /// - Returns: `[B, C, H, W]`.
    package static func gdfnDepthwiseGate(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        precondition(x.rank == 4 && x.shape[1] % 2 == 0, "gdfnDepthwiseGate: input must be [B, 2·C, H, W], got \(x.shape)")
        let batch = x.shape[0], channels = x.shape[1], hidden = channels / 2, h = x.shape[2], w = x.shape[3]
        precondition(weight.shape == [channels, 1, 3, 3],
                     "gdfnDepthwiseGate: weight must be [\(channels), 1, 3, 3], got \(weight.shape)")
        if let bias { precondition(bias.count == channels, "gdfnDepthwiseGate: bias \(bias.shape) for \(channels) channels") }
        let out = Tensor(uninitialized: [batch, hidden, h, w])
        let src = x.pointer, kernel = weight.pointer, shift = bias?.pointer, dst = out.pointer
        let plane = h * w

        /// One output row of the depthwise convolution of `channel` (its plane at `input`) into `row`.
        @inline(__always)
        func convolveRow(_ input: UnsafeMutablePointer<Float>, channel: Int, row oh: Int, into row: UnsafeMutablePointer<Float>) {
            // The row kernel of conv2d's depthwise path (C, AVX2 / AVX-512 where available).
            withUnsafeTemporaryAllocation(of: UnsafePointer<Float>?.self, capacity: 3) { rows in
                for ki in 0..<3 {
                    let ih = oh - 1 + ki
                    rows[ki] = ih < 0 || ih >= h ? nil : UnsafePointer(input + ih * w)
                }
                VectorRows.depthwiseOutputRow(row, outCount: w, rows: UnsafePointer(rows.baseAddress!), kernelH: 3,
                                              inCount: w, weights: kernel + channel * 9, kernelW: 3, padding: 1,
                                              bias: shift?[channel] ?? 0)
            }
        }

        Parallel.forEach(batch * hidden, cost: plane * 24) { planes in
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 2 * w)
            defer { scratch.deallocate() }
            let first = scratch, second = scratch + w
            for r in planes {
                let b = r / hidden, c = r % hidden
                let input1 = src + (b * channels + c) * plane, input2 = input1 + hidden * plane
                let output = dst + r * plane
                for oh in 0..<h {
                    convolveRow(input1, channel: c, row: oh, into: first)
                    convolveRow(input2, channel: c + hidden, row: oh, into: second)
                    VectorRows.geluGate(output + oh * w, first, second, count: w)
                }
            }
        }
        return out
    }
}
