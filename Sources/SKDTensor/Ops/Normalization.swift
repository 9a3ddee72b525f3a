// Layer normalisation (over the channels of an NCHW map, and over the last axis) and L2 normalisation.
//
// Statistics are two-pass (mean, then Σ(x − μ)²) over data that is already in cache, so they do not suffer the
// cancellation of E[x²] − E[x]². The backward passes cache only the per-position mean and 1/σ.

import Foundation

// MARK: - LayerNorm over the channels of an NCHW map

extension Tensor {
    /// Pixels per block of the channel-LayerNorm kernels. A block (`C × block` floats) is read several times
    /// (mean, variance, output), so it is sized to stay in the L1/L2 cache, ≈ 32 KiB.
    fileprivate static func channelNormBlock(channels: Int) -> Int {
        // A multiple of 64 pixels: the C kernel's vector loops then end without a scalar remainder.
        let target = 8192 / Swift.max(channels, 1)
        return Swift.min(1024, Swift.max(64, (target + 63) / 64 * 64))
    }

    /// Layer normalisation over the channel axis of an NCHW map, at every pixel: Restormer's `LayerNorm`
    /// (`to_3d` → normalise over the last axis → `to_4d`) without the two layout copies.
    ///
    /// With `bias`, the WithBias form `(x − μ)/√(σ² + eps) · w + b`; without, Restormer's BiasFree form
    /// `x/√(σ² + eps) · w` (x is not centred, but σ² is still the variance about the mean). σ² is the population
    /// variance over the C channels of one pixel.
    ///
    /// - Parameters:
    ///   - weight: `[C]`.
    ///   - bias: `[C]`, or `nil` for the BiasFree form.
    ///   - eps: added to the variance.
    /// - Returns: `[N, C, H, W]`, like `self` (which must be `[N, C, H, W]`).
    public func layerNormChannels(weight: Tensor, bias: Tensor?, eps: Float = 1e-5) -> Tensor {
        precondition(rank == 4, "layerNormChannels: input must be [N, C, H, W], got \(shape)")
        let n = shape[0], c = shape[1], hw = shape[2] * shape[3]
        precondition(c > 0, "layerNormChannels: input \(shape) has no channels")
        precondition(weight.shape == [c], "layerNormChannels: weight \(weight.shape) for \(c) channels (input \(shape)); expected [\(c)]")
        if let bias {
            precondition(bias.shape == [c], "layerNormChannels: bias \(bias.shape) for \(c) channels (input \(shape)); expected [\(c)]")
        }
        let out = Tensor(uninitialized: shape)
        let meanCache = TensorStorage(count: n * hw), rstdCache = TensorStorage(count: n * hw)
        let block = Tensor.channelNormBlock(channels: c)
        let blocksPerImage = (hw + block - 1) / block, blocks = n * blocksPerImage
        let xp = pointer, yp = out.pointer, wp = weight.pointer, bp = bias?.pointer
        let mp = meanCache.pointer, rp = rstdCache.pointer

        // Each block of pixels: the C kernel (portable / AVX2 / AVX-512) that the fused inference paths call too.
        Parallel.forEach(blocks, cost: 3 * c * block) { range in
            for b in range {
                let image = b / blocksPerImage, p0 = (b % blocksPerImage) * block
                let len = Swift.min(block, hw - p0)
                let off = image * c * hw + p0
                VectorRows.layerNormChannels(xp + off, xStride: hw, yp + off, yStride: hw, weight: wp, bias: bp,
                                             channels: c, count: len, eps: eps,
                                             mean: mp + image * hw + p0, rstd: rp + image * hw + p0)
            }
        }

        let x = self, withBias = bias != nil
        let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        return out.recorded("layerNormChannels", inputs) { g in
            // With a = g·w and z the normalised value that w multiplies (x̂ = (x − μ)/σ with bias, x/σ without):
            //   dx = (1/σ)·(a − [mean_c a] − x̂ · mean_c(a·z))     (the bracket only in the WithBias form)
            //   dw_c = Σ_pixels g·z,   db_c = Σ_pixels g.
            let needX = x.requiresGrad, needW = weight.requiresGrad, needB = bias?.requiresGrad ?? false
            let gx = needX ? Tensor(uninitialized: x.shape) : nil
            // Per-block partial sums of dw and db: deterministic, no atomics; reduced below.
            let partialW = needW ? Tensor(uninitialized: [blocks, c]) : nil
            let partialB = needB ? Tensor(uninitialized: [blocks, c]) : nil
            let gp = g.pointer, dxp = gx?.pointer, pwp = partialW?.pointer, pbp = partialB?.pointer
            let mp = meanCache.pointer, rp = rstdCache.pointer
            Parallel.forEach(blocks, cost: 3 * c * block) { range in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: 3 * block) { scratch in
                    for b in range {
                        let image = b / blocksPerImage, p0 = (b % blocksPerImage) * block
                        let len = Swift.min(block, hw - p0)
                        let off = image * c * hw + p0
                        VectorRows.layerNormChannelsBackward(
                            xp + off, gp + off, stride: hw, weight: wp, mean: mp + image * hw + p0,
                            rstd: rp + image * hw + p0, channels: c, count: len, withBias: withBias,
                            dx: dxp.map { $0 + off }, dw: pwp.map { $0 + b * c }, db: pbp.map { $0 + b * c },
                            scratch: scratch.baseAddress!)
                    }
                }
            }
            var grads: [Tensor?] = [gx, partialW.map { Tensor.sumPartials($0, rows: blocks, columns: c) }]
            if withBias { grads.append(partialB.map { Tensor.sumPartials($0, rows: blocks, columns: c) }) }
            return grads
        }
    }

    /// Column sums of a `[rows, columns]` buffer of partial sums, in Double, as a `[columns]` tensor.
    fileprivate static func sumPartials(_ partial: Tensor, rows: Int, columns: Int) -> Tensor {
        let out = Tensor(uninitialized: [columns])
        let p = partial.pointer, o = out.pointer
        withUnsafeTemporaryAllocation(of: Double.self, capacity: columns) { acc in
            let a = acc.baseAddress!
            a.initialize(repeating: 0, count: columns)
            for r in 0..<rows {
                let row = p + r * columns
                for j in 0..<columns { a[j] += Double(row[j]) }
            }
            for j in 0..<columns { o[j] = Float(a[j]) }
        }
        return out
    }
}

// MARK: - LayerNorm over the last axis

extension Tensor {
    /// Layer normalisation over the last axis, `(x − μ)/√(σ² + eps) · w + b` with the population variance
    /// (PyTorch's `nn.LayerNorm(C)` on token sequences).
    ///
    /// - Parameters:
    ///   - weight: `[C]`, or `nil` for no scale.
    ///   - bias: `[C]`, or `nil` for no shift.
    ///   - eps: added to the variance.
    /// - Returns: the same shape as `self`, `[..., C]`.
    public func layerNorm(weight: Tensor?, bias: Tensor?, eps: Float = 1e-5) -> Tensor {
        precondition(rank >= 1, "layerNorm: needs at least one axis, got a scalar")
        let c = shape[rank - 1]
        if let weight { precondition(weight.shape == [c], "layerNorm: weight \(weight.shape) for input \(shape); expected [\(c)]") }
        if let bias { precondition(bias.shape == [c], "layerNorm: bias \(bias.shape) for input \(shape); expected [\(c)]") }
        let rows = c == 0 ? 0 : count / c
        let out = Tensor(uninitialized: shape)
        let meanCache = TensorStorage(count: rows), rstdCache = TensorStorage(count: rows)
        let xp = pointer, yp = out.pointer, wp = weight?.pointer, bp = bias?.pointer
        let mp = meanCache.pointer, rp = rstdCache.pointer
        let invC = 1 / Float(c)
        Parallel.forEach(rows, cost: 3 * c) { range in
            for row in range {
                let x = xp + row * c, y = yp + row * c
                let mu = x[0] + RowKernels.sum(x, c, minus: x[0]) * invC
                let rs = 1 / (RowKernels.sumSquaredDeviation(x, mean: mu, c) * invC + eps).squareRoot()
                mp[row] = mu
                rp[row] = rs
                switch (wp, bp) {
                case let (w?, b?): for j in 0..<c { y[j] = (x[j] - mu) * rs * w[j] + b[j] }
                case let (w?, nil): for j in 0..<c { y[j] = (x[j] - mu) * rs * w[j] }
                case let (nil, b?): for j in 0..<c { y[j] = (x[j] - mu) * rs + b[j] }
                case (nil, nil): for j in 0..<c { y[j] = (x[j] - mu) * rs }
                }
            }
        }

        let x = self
        let inputs = [x] + (weight.map { [$0] } ?? []) + (bias.map { [$0] } ?? [])
        return out.recorded("layerNorm", inputs) { g in
            // a = g·w; dx = (1/σ)(a − mean a − x̂·mean(a·x̂)); dw = Σ_rows g·x̂; db = Σ_rows g.
            let needX = x.requiresGrad, needW = weight?.requiresGrad ?? false, needB = bias?.requiresGrad ?? false
            let rowsPerBlock = Swift.max(1, 4096 / Swift.max(c, 1))
            let blocks = (rows + rowsPerBlock - 1) / rowsPerBlock
            let gx = needX ? Tensor(uninitialized: x.shape) : nil
            let partialW = needW ? Tensor(zeros: [blocks, c]) : nil
            let partialB = needB ? Tensor(zeros: [blocks, c]) : nil
            let gp = g.pointer, dxp = gx?.pointer, pwp = partialW?.pointer, pbp = partialB?.pointer
            let mp = meanCache.pointer, rp = rstdCache.pointer
            Parallel.forEach(blocks, cost: 3 * c * rowsPerBlock) { range in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * c) { scratch in
                    let xhat = scratch.baseAddress!, a = xhat + c
                    for b in range {
                        let pw = pwp.map { $0 + b * c }, pb = pbp.map { $0 + b * c }
                        for row in (b * rowsPerBlock)..<Swift.min(rows, (b + 1) * rowsPerBlock) {
                            let xr = xp + row * c, gr = gp + row * c, mu = mp[row], rs = rp[row]
                            for j in 0..<c { xhat[j] = (xr[j] - mu) * rs }
                            if let pw { for j in 0..<c { pw[j] += gr[j] * xhat[j] } }
                            if let pb { for j in 0..<c { pb[j] += gr[j] } }
                            guard let dxp else { continue }
                            if let wp { for j in 0..<c { a[j] = gr[j] * wp[j] } } else { a.update(from: gr, count: c) }
                            let meanA = RowKernels.sum(a, c) * invC
                            let meanAX = RowKernels.dot(a, xhat, c) * invC
                            let d = dxp + row * c
                            for j in 0..<c { d[j] = rs * (a[j] - meanA - xhat[j] * meanAX) }
                        }
                    }
                }
            }
            var grads: [Tensor?] = [gx]
            if weight != nil { grads.append(partialW.map { Tensor.sumPartials($0, rows: blocks, columns: c) }) }
            if bias != nil { grads.append(partialB.map { Tensor.sumPartials($0, rows: blocks, columns: c) }) }
            return grads
        }
    }
}

// MARK: - L2 normalisation

extension Tensor {
    /// `x / max(‖x‖₂, eps)` over the last axis (PyTorch's `F.normalize(x, p: 2, dim: -1)`).
    ///
    /// - Parameter eps: the floor of the norm, which keeps zero rows finite.
    /// - Returns: the same shape as `self`, `[..., n]`.
    public func l2Normalized(eps: Float = 1e-12) -> Tensor {
        precondition(rank >= 1, "l2Normalized: needs at least one axis, got a scalar")
        let n = shape[rank - 1]
        let rows = n == 0 ? 0 : count / n
        let out = Tensor(uninitialized: shape)
        let denominators = TensorStorage(count: rows)
        let xp = pointer, yp = out.pointer, dp = denominators.pointer
        Parallel.forEach(rows, cost: 2 * n) { range in
            for row in range {
                let x = xp + row * n, y = yp + row * n
                let d = Swift.max(RowKernels.dot(x, x, n).squareRoot(), eps)
                dp[row] = d
                let inv = 1 / d
                for j in 0..<n { y[j] = x[j] * inv }
            }
        }
        let cache = out.storage
        return out.recorded("l2Normalized", [self]) { g in
            // Unclamped rows: dx = (g − y·Σ g·y) / ‖x‖. Clamped rows divide by the constant eps: dx = g / eps.
            let gx = Tensor(uninitialized: g.shape)
            let gp = g.pointer, gxp = gx.pointer, yp = cache.pointer, dp = denominators.pointer
            Parallel.forEach(rows, cost: 2 * n) { range in
                for row in range {
                    let gr = gp + row * n, y = yp + row * n, o = gxp + row * n
                    let d = dp[row], inv = 1 / d
                    let s = d > eps ? RowKernels.dot(gr, y, n) : 0
                    for j in 0..<n { o[j] = (gr[j] - y[j] * s) * inv }
                }
            }
            return [gx]
        }
    }
}
