// Softmax, log-softmax and log-sum-exp over the last axis.
//
// All three subtract the row maximum before exponentiating (no overflow for any finite input) and work row by
// row on contiguous memory: a row is read once from memory and then stays in L1 for the remaining passes.
// Rows are split across cores. Softmax's rows are the C kernels of VectorRows (as the MCA and MDTA softmaxes).

import Foundation

extension Tensor {
    /// The row length (last extent) and row count of a last-axis op, checking that there is a last axis.
    private func lastAxisRows(_ op: String) -> (length: Int, rows: Int) {
        precondition(rank >= 1, "\(op): needs at least one axis, got a scalar of shape \(shape)")
        let n = shape[rank - 1]
        return (n, n == 0 ? 0 : count / n)
    }

    /// Softmax over the last axis, `yᵢ = exp(xᵢ − max x) / Σⱼ exp(xⱼ − max x)`.
    ///
    /// `-∞` entries (masked attention scores) get exactly 0. A row that is entirely `-∞` gives NaN, as in PyTorch.
    ///
    /// - Returns: the same shape as `self` (`[..., n]`); every row sums to 1.
    public func softmax() -> Tensor {
        let (n, rows) = lastAxisRows("softmax")
        let out = Tensor(uninitialized: shape)
        let xp = pointer, yp = out.pointer
        Parallel.forEach(rows, cost: n) { range in
            for row in range { VectorRows.softmaxRow(yp + row * n, xp + row * n, count: n) }
        }
        // The closure holds the output's storage, not the output: a tensor capturing itself would never be freed
        // when the graph is dropped without a backward pass.
        let cache = out.storage
        return out.recorded("softmax", [self]) { g in
            // dx = y ⊙ (g − Σ g·y), row by row.
            let yp = cache.pointer
            let gx = Tensor(uninitialized: g.shape)
            let gp = g.pointer, dp = gx.pointer
            Parallel.forEach(rows, cost: n) { range in
                for row in range { VectorRows.softmaxBackwardRow(dp + row * n, gp + row * n, yp + row * n, count: n) }
            }
            return [gx]
        }
    }

    /// Log-softmax over the last axis, `yᵢ = xᵢ − max x − log Σⱼ exp(xⱼ − max x)`.
    ///
    /// - Returns: the same shape as `self` (`[..., n]`).
    public func logSoftmax() -> Tensor {
        let (n, rows) = lastAxisRows("logSoftmax")
        let out = Tensor(uninitialized: shape)
        let xp = pointer, yp = out.pointer
        Parallel.forEach(rows, cost: n) { range in
            for row in range {
                let x = xp + row * n, y = yp + row * n
                let m = RowKernels.max(x, n)
                // y is scratch for the exponentials before it receives the result.
                for j in 0..<n { y[j] = RowKernels.exp(x[j] - m) }
                let shift = m + Foundation.log(RowKernels.sum(y, n))
                for j in 0..<n { y[j] = x[j] - shift }
            }
        }
        let cache = out.storage
        return out.recorded("logSoftmax", [self]) { g in
            // dx = g − softmax · Σ g, with softmax = exp(y).
            let yp = cache.pointer
            let gx = Tensor(uninitialized: g.shape)
            let gp = g.pointer, dp = gx.pointer
            Parallel.forEach(rows, cost: n) { range in
                for row in range {
                    let gr = gp + row * n, y = yp + row * n, d = dp + row * n
                    let s = RowKernels.sum(gr, n)
                    for j in 0..<n { d[j] = gr[j] - RowKernels.exp(y[j]) * s }
                }
            }
            return [gx]
        }
    }

    /// `log Σ exp(x)` over the last axis, computed as `max x + log Σ exp(x − max x)`.
    ///
    /// As in PyTorch, a row whose maximum is infinite gives that infinity (a row of `-∞` gives `-∞`).
    ///
    /// - Returns: `self`'s shape without its last axis (`[...]` for `[..., n]`).
    public func logSumExp() -> Tensor {
        let (n, rows) = lastAxisRows("logSumExp")
        let out = Tensor(uninitialized: Array(shape.dropLast()))
        let xp = pointer, op = out.pointer
        Parallel.forEach(rows, cost: 2 * n) { range in
            // The exponentials go through a scratch row so that they vectorise apart from the (SIMD) sum.
            withUnsafeTemporaryAllocation(of: Float.self, capacity: n) { scratch in
                let e = scratch.baseAddress!
                for row in range {
                    let x = xp + row * n
                    let m = RowKernels.max(x, n)
                    if !m.isFinite { op[row] = m; continue }
                    for j in 0..<n { e[j] = RowKernels.exp(x[j] - m) }
                    op[row] = m + Foundation.log(RowKernels.sum(e, n))
                }
            }
        }
        let x = self, cache = out.storage
        return out.recorded("logSumExp", [x]) { g in
            // dxᵢ = g · exp(xᵢ − lse): the softmax of the row.
            let op = cache.pointer
            let gx = Tensor(uninitialized: x.shape)
            let gp = g.pointer, dp = gx.pointer
            Parallel.forEach(rows, cost: n) { range in
                for row in range {
                    let xr = xp + row * n, d = dp + row * n
                    let lse = op[row], gr = gp[row]
                    for j in 0..<n { d[j] = gr * RowKernels.exp(xr[j] - lse) }
                }
            }
            return [gx]
        }
    }
}
