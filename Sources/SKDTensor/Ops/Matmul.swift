// Matrix products through cblas_sgemm: plain, batched, and the linear layer. Transposed operands are
// passed to BLAS as transposes, never copied.

import Foundation

extension Tensor {
    /// Runs `batch` GEMMs `C_i = op(A_i)·op(B_i)`. A stride of 0 reuses one matrix for every batch; an output
    /// stride of 0 accumulates every product into the same `C` (used for a shared operand's gradient).
    static func gemmBatched(
        _ a: UnsafeMutablePointer<Float>, _ b: UnsafeMutablePointer<Float>, _ c: UnsafeMutablePointer<Float>,
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        batch: Int, strideA: Int, strideB: Int, strideC: Int
    ) {
        for i in 0..<batch {
            BLAS.sgemm(
                transA: transA, transB: transB, m: m, n: n, k: k,
                a: a + i * strideA, b: b + i * strideB,
                beta: strideC == 0 && i > 0 ? 1 : 0, c: c + i * strideC)
        }
    }

    /// Matrix product over the last two axes, batched over the leading ones.
    ///
    /// - Parameters:
    ///   - a: `[..., M, K]`, or `[..., K, M]` when `transposeA`.
    ///   - b: `[..., K, N]`, or `[..., N, K]` when `transposeB`. Either operand may be a plain matrix
    ///     (rank 2), which is then shared by every batch; otherwise the leading axes must be equal.
    /// - Returns: `[..., M, N]`.
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        precondition(a.rank >= 2 && b.rank >= 2, "matmul: operands need rank ≥ 2, got \(a.shape) and \(b.shape)")
        let m = transposeA ? a.shape[a.rank - 1] : a.shape[a.rank - 2]
        let ka = transposeA ? a.shape[a.rank - 2] : a.shape[a.rank - 1]
        let kb = transposeB ? b.shape[b.rank - 1] : b.shape[b.rank - 2]
        let n = transposeB ? b.shape[b.rank - 2] : b.shape[b.rank - 1]
        precondition(ka == kb, "matmul: inner extents differ (\(a.shape)\(transposeA ? "ᵀ" : "") · \(b.shape)\(transposeB ? "ᵀ" : ""))")
        let batchA = Array(a.shape.dropLast(2)), batchB = Array(b.shape.dropLast(2))
        precondition(batchA == batchB || batchA.isEmpty || batchB.isEmpty,
                     "matmul: batch axes \(batchA) and \(batchB) differ")
        let batchShape = batchA.isEmpty ? batchB : batchA
        let batch = batchShape.reduce(1, *)
        let out = Tensor(uninitialized: batchShape + [m, n])
        gemmBatched(a.pointer, b.pointer, out.pointer, transA: transposeA, transB: transposeB, m: m, n: n, k: ka,
                    batch: batch, strideA: batchA.isEmpty ? 0 : m * ka, strideB: batchB.isEmpty ? 0 : ka * n, strideC: m * n)
        return out.recorded("matmul", [a, b]) { g in
            var ga: Tensor? = nil, gb: Tensor? = nil
            if a.requiresGrad {
                // d op(A) = G · op(B)ᵀ; stored transposed when A was.
                ga = transposeA ? productGrad(b, g, transA: transposeB, transB: true, into: a.shape, batch: batch)
                                : productGrad(g, b, transA: false, transB: !transposeB, into: a.shape, batch: batch)
            }
            if b.requiresGrad {
                // d op(B) = op(A)ᵀ · G; stored transposed when B was.
                gb = transposeB ? productGrad(g, a, transA: true, transB: transposeA, into: b.shape, batch: batch)
                                : productGrad(a, g, transA: !transposeA, transB: false, into: b.shape, batch: batch)
            }
            return [ga, gb]
        }
    }

    /// One operand's gradient of a (batched) product: `x · y` with the given transposes, written into a tensor
    /// of `shape`; when `shape` is a plain matrix but the product was batched, the batches are summed.
    private static func productGrad(_ x: Tensor, _ y: Tensor, transA: Bool, transB: Bool, into shape: [Int], batch: Int) -> Tensor {
        let m = transA ? x.shape[x.rank - 1] : x.shape[x.rank - 2]
        let k = transA ? x.shape[x.rank - 2] : x.shape[x.rank - 1]
        let n = transB ? y.shape[y.rank - 2] : y.shape[y.rank - 1]
        let out = Tensor(uninitialized: shape)
        let shared = shape.count == 2 && batch > 1
        gemmBatched(x.pointer, y.pointer, out.pointer, transA: transA, transB: transB, m: m, n: n, k: k,
                    batch: batch, strideA: x.rank == 2 ? 0 : m * k, strideB: y.rank == 2 ? 0 : k * n,
                    strideC: shared ? 0 : m * n)
        return out
    }

    /// A fully connected layer over the last axis: `y = x·Wᵀ + b` (PyTorch's `nn.Linear`).
    ///
    /// - Parameters:
    ///   - x: `[..., inFeatures]`.
    ///   - weight: `[outFeatures, inFeatures]`.
    ///   - bias: `[outFeatures]`, or `nil`.
    /// - Returns: `[..., outFeatures]`.
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) -> Tensor {
        precondition(weight.rank == 2, "linear: weight must be [out, in], got \(weight.shape)")
        let inF = weight.shape[1], outF = weight.shape[0]
        precondition(x.shape.last == inF, "linear: input \(x.shape) does not end in \(inF) features")
        if let bias { precondition(bias.count == outF, "linear: bias \(bias.shape) for \(outF) outputs") }
        let rows = x.count / inF
        let out = Tensor(uninitialized: Array(x.shape.dropLast()) + [outF])
        if let bias {
            let d = out.pointer, bp = bias.pointer
            for r in 0..<rows { (d + r * outF).update(from: bp, count: outF) }
        }
        BLAS.sgemm(transB: true, m: rows, n: outF, k: inF, a: x.pointer, b: weight.pointer, beta: bias == nil ? 0 : 1, c: out.pointer)
        let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        return out.recorded("linear", inputs) { g in
            var grads: [Tensor?] = []
            if x.requiresGrad {
                let gx = Tensor(uninitialized: x.shape)
                BLAS.sgemm(m: rows, n: inF, k: outF, a: g.pointer, b: weight.pointer, c: gx.pointer)
                grads.append(gx)
            } else { grads.append(nil) }
            if weight.requiresGrad {
                let gw = Tensor(uninitialized: weight.shape)
                BLAS.sgemm(transA: true, m: outF, n: inF, k: rows, a: g.pointer, b: x.pointer, c: gw.pointer)
                grads.append(gw)
            } else { grads.append(nil) }
            if let bias {
                grads.append(bias.requiresGrad ? g.reshaped([rows, outF]).sum(axis: 0) : nil)
            }
            return grads
        }
    }
}
