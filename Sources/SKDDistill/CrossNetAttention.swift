// Multi-dimensional cross-net attention (MCA): the student's projected features re-weighted by attention maps
// computed against the teacher's features, along channels (C×C) and along space (HW×HW).
//
// With s the projected student feature and t the teacher feature, both viewed as [B, C, N], N = H·W:
//   channel: s_c = softmax(t·sᵀ / √N) · s        a [B, C, C] attention
//   spatial: s_s = s · softmax(tᵀ·s / √C)        a [B, N, N] attention
// The spatial map at a 128×128 tap has N = 16384 — 1 GiB per sample as a dense matrix — so the spatial branch
// is computed in row tiles of the attention map: memory O(tile·N + C·N), the same result as the dense formula.

import Foundation
import SKDTensor

/// The channel branch of MCA: `softmax(t·sᵀ/√N)·s`.
///
/// - Parameters:
///   - student: the projected student feature `s`, `[B, C, H, W]`.
///   - teacher: the teacher feature `t`, `[B, C, H, W]` (no gradient flows into it in distillation).
/// - Returns: `[B, C, H, W]`.
public func channelCrossAttention(student: Tensor, teacher: Tensor) -> Tensor {
    precondition(student.shape == teacher.shape && student.rank == 4,
                 "channelCrossAttention: student \(student.shape) and teacher \(teacher.shape) must be equal [B, C, H, W]")
    let (b, c, n) = (student.shape[0], student.shape[1], student.shape[2] * student.shape[3])
    let s = student.reshaped([b, c, n]), t = teacher.reshaped([b, c, n])
    let attention = (Tensor.matmul(t, s, transposeB: true) * (1 / Float(n).squareRoot())).softmax()   // [B, C, C]
    return Tensor.matmul(attention, s).reshaped(student.shape)
}

/// The spatial branch of MCA computed densely: `s·softmax(tᵀ·s/√C)`. Materialises the `[B, N, N]` map;
/// for tests and small N. `spatialCrossAttention` is the production path.
///
/// - Parameters:
///   - student: `[B, C, H, W]`.
///   - teacher: `[B, C, H, W]`.
/// - Returns: `[B, C, H, W]`.
public func spatialCrossAttentionDense(student: Tensor, teacher: Tensor) -> Tensor {
    precondition(student.shape == teacher.shape && student.rank == 4,
                 "spatialCrossAttention: student \(student.shape) and teacher \(teacher.shape) must be equal [B, C, H, W]")
    let (b, c, n) = (student.shape[0], student.shape[1], student.shape[2] * student.shape[3])
    let s = student.reshaped([b, c, n]), t = teacher.reshaped([b, c, n])
    let attention = (Tensor.matmul(t, s, transposeA: true) * (1 / Float(c).squareRoot())).softmax()  // [B, N, N]
    return Tensor.matmul(s, attention).reshaped(student.shape)
}

/// The spatial branch of MCA, `s·softmax(tᵀ·s/√C)`, in tiles of `tileRows` rows of the `[N, N]` attention map.
///
/// Each row of the map is normalised on its own, so a tile of rows is complete once its logits are computed:
/// no running maximum across tiles is needed. Forward per tile I: `A_I = softmax(t_Iᵀ·s/√C)` (`[|I|, N]`),
/// `out += s_I·A_I`. Backward recomputes `A_I` rather than storing the map (memory stays O(tile·N + C·N)):
/// `dA_I = s_Iᵀ·G`, `gs_I += G·A_Iᵀ`, `dL_I = A_I ⊙ (dA_I − Σ_j A_I⊙dA_I)/√C`, `gt_I = s·dL_Iᵀ`, `gs += t_I·dL_I`.
///
/// - Parameters:
///   - student: `[B, C, H, W]`; gradients flow into it.
///   - teacher: `[B, C, H, W]`; gradients flow into it too when it requires them (the trainer's teacher does not).
///   - tileRows: rows of the attention map per tile; `nil` picks about 2 Mi elements per tile buffer.
/// - Returns: `[B, C, H, W]`, equal to `spatialCrossAttentionDense`.
public func spatialCrossAttention(student: Tensor, teacher: Tensor, tileRows: Int? = nil) -> Tensor {
    precondition(student.shape == teacher.shape && student.rank == 4,
                 "spatialCrossAttention: student \(student.shape) and teacher \(teacher.shape) must be equal [B, C, H, W]")
    let (batch, c, n) = (student.shape[0], student.shape[1], student.shape[2] * student.shape[3])
    let tile = Swift.max(1, Swift.min(n, tileRows ?? Swift.max(16, (1 << 21) / Swift.max(n, 1))))
    let scale = 1 / Float(c).squareRoot()
    let out = Tensor(uninitialized: student.shape)
    let logits = Tensor(uninitialized: [tile, n])
    for b in 0..<batch {
        let s = student.pointer + b * c * n, t = teacher.pointer + b * c * n, o = out.pointer + b * c * n
        for i0 in stride(from: 0, to: n, by: tile) {
            let rows = Swift.min(tile, n - i0)
            // A_I = softmax(t_Iᵀ·s/√C): t_I is the column block [C, rows] of t (leading dimension N).
            BLAS.sgemm(transA: true, m: rows, n: n, k: c, alpha: scale, a: t + i0, lda: n, b: s, c: logits.pointer)
            softmaxRowsInPlace(logits.pointer, rows: rows, length: n)
            // out += s_I·A_I
            BLAS.sgemm(m: c, n: n, k: rows, a: s + i0, lda: n, b: logits.pointer, beta: i0 == 0 ? 0 : 1, c: o)
        }
    }
    return out.recorded("spatialCrossAttention", [student, teacher]) { g in
        let gs = Tensor(zeros: student.shape)
        let gt: Tensor? = teacher.requiresGrad ? Tensor(uninitialized: teacher.shape) : nil
        let probs = Tensor(uninitialized: [tile, n]), dProbs = Tensor(uninitialized: [tile, n])
        for b in 0..<batch {
            let off = b * c * n
            let s = student.pointer + off, t = teacher.pointer + off, gOut = g.pointer + off, gS = gs.pointer + off
            for i0 in stride(from: 0, to: n, by: tile) {
                let rows = Swift.min(tile, n - i0)
                let a = probs.pointer, da = dProbs.pointer
                BLAS.sgemm(transA: true, m: rows, n: n, k: c, alpha: scale, a: t + i0, lda: n, b: s, c: a)
                softmaxRowsInPlace(a, rows: rows, length: n)
                // dA_I = s_Iᵀ·G   [rows, N]
                BLAS.sgemm(transA: true, m: rows, n: n, k: c, a: s + i0, lda: n, b: gOut, c: da)
                // gs[:, I] += G·A_Iᵀ   (s_I's role as the value matrix)
                BLAS.sgemm(transB: true, m: c, n: rows, k: n, a: gOut, b: a, ldb: n, beta: 1, c: gS + i0, ldc: n)
                softmaxBackwardRowsInPlace(probabilities: a, gradient: da, rows: rows, length: n, scale: scale)
                // gs += t_I·dL_I   (s's role as the key matrix)
                BLAS.sgemm(m: c, n: n, k: rows, a: t + i0, lda: n, b: da, beta: 1, c: gS)
                if let gt {
                    // gt[:, I] = s·dL_Iᵀ
                    BLAS.sgemm(transB: true, m: c, n: rows, k: n, a: s, b: da, ldb: n, c: gt.pointer + off + i0, ldc: n)
                }
            }
        }
        return [gs, gt]
    }
}

/// Replaces each of `rows` rows of `length` logits by its softmax (max-subtracted), rows split across cores: the
/// C row kernel of `Tensor.softmax` (AVX2 / AVX-512 where available).
func softmaxRowsInPlace(_ p: UnsafeMutablePointer<Float>, rows: Int, length: Int) {
    Parallel.forEach(rows, cost: length) { range in
        for r in range { VectorRows.softmaxRow(p + r * length, p + r * length, count: length) }
    }
}

/// Turns `gradient` (dL/dA for softmax rows `probabilities`) into `scale · dL/dlogits`, in place:
/// `A ⊙ (dA − Σ_j A_j·dA_j) · scale` (the C row kernel of `Tensor.softmax`'s backward).
func softmaxBackwardRowsInPlace(probabilities a: UnsafeMutablePointer<Float>, gradient da: UnsafeMutablePointer<Float>,
                                rows: Int, length: Int, scale: Float) {
    Parallel.forEach(rows, cost: length) { range in
        for r in range {
            VectorRows.softmaxBackwardRow(da + r * length, da + r * length, a + r * length, count: length, scale: scale)
        }
    }
}
