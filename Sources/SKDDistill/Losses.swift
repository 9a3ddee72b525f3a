// The losses of the method and of its baselines, as plain differentiable functions of tensors.
// Docs/distillation.md states each definition with its reasoning and the paper's equation numbers.

import Foundation
import SKDTensor

/// Mean absolute error over all elements (PyTorch's `L1Loss`, mean reduction).
///
/// - Parameters:
///   - x: any shape.
///   - y: the same shape as `x`.
/// - Returns: a shape-`[]` tensor.
public func l1Loss(_ x: Tensor, _ y: Tensor) -> Tensor {
    precondition(x.shape == y.shape, "l1Loss: \(x.shape) vs \(y.shape)")
    return (x - y).abs().mean()
}

/// The Gaussian-kernel feature distance
/// `GK(x, y) = mean_{b,h,w}( 1 − exp( −mean_c (x − y)² / (2σ²) ) )`.
///
/// Unlike an L2 distance it saturates: a student feature far from the teacher's costs at most 1 per pixel, so a
/// few hopeless pixels cannot dominate the gradient (the "soft" of soft knowledge distillation).
///
/// - Parameters:
///   - x: `[B, C, H, W]`.
///   - y: `[B, C, H, W]`.
///   - sigma: the kernel width σ.
/// - Returns: a shape-`[]` tensor.
public func gaussianKernelLoss(_ x: Tensor, _ y: Tensor, sigma: Float = 1) -> Tensor {
    precondition(x.shape == y.shape && x.rank == 4, "gaussianKernelLoss: \(x.shape) vs \(y.shape), expected equal [B, C, H, W]")
    let meanSquare = (x - y).square().mean(axis: 1)                  // [B, H, W]
    return (1 - (meanSquare * (-1 / (2 * sigma * sigma))).exp()).mean()
}

/// Which form of the contrastive loss to use.
public enum ContrastiveForm: String, Codable, CaseIterable, Sendable {
    /// InfoNCE on cosine similarities (the paper's Eq. 4 read as a loss): the teacher's output is the positive,
    /// every degraded input of the batch a negative.
    case infonce
    /// The distance ratio of AECR-Net's contrastive regularisation: L1 to the positive over mean L1 to the negatives.
    case ratio
}

/// The contrastive loss on features of one layer, `L_l`.
///
/// - Parameters:
///   - student: φ_l(S), `[B, ...]` (gradients flow into it).
///   - teacher: φ_l(T), the positives, shaped like `student`.
///   - degraded: φ_l(I_q), the negatives `[N, ...]`: usually the batch's own (N = B), under data-parallel training
///     the global batch's, gathered from every rank (N = B·K); the per-sample shape must be `student`'s.
///   - form: `.infonce` or `.ratio`.
///   - tau: the InfoNCE temperature τ (ignored by `.ratio`).
///   - ratioEps: the ratio form's denominator guard.
/// - Returns: a shape-`[]` tensor.
public func contrastiveLayerLoss(student: Tensor, teacher: Tensor, degraded: Tensor,
                                 form: ContrastiveForm, tau: Float = 0.1, ratioEps: Float = 1e-7) -> Tensor {
    precondition(student.shape == teacher.shape && student.shape.dropFirst() == degraded.shape.dropFirst(),
                 "contrastive loss: student \(student.shape), teacher \(teacher.shape), degraded \(degraded.shape) must agree")
    let b = student.shape[0], n = degraded.shape[0]
    let s = student.reshaped([b, -1]), t = teacher.reshaped([b, -1]), neg = degraded.reshaped([n, -1])
    switch form {
    case .infonce:
        let sn = s.l2Normalized(), tn = t.l2Normalized(), nn = neg.l2Normalized()
        let positive = (sn * tn).sum(axis: 1, keepDims: true) * (1 / tau)            // [B, 1]
        let negatives = Tensor.matmul(sn, nn, transposeB: true) * (1 / tau)          // [B, N]
        // logsumexp is max-subtracted, so τ = 1e-6 (logits up to 1e6) stays finite.
        let logits = Tensor.concat([positive, negatives], axis: 1)                    // [B, 1 + N]
        return (logits.logSumExp() - positive.reshaped([b])).mean()
    case .ratio:
        let dpos = (s - t).abs().mean(axis: 1)                                        // [B]
        var dneg: Tensor? = nil
        for q in 0..<n {
            // One negative at a time: memory B·D instead of B·N·D.
            let d = (s - neg.slice(axis: 0, start: q, end: q + 1)).abs().mean(axis: 1)
            dneg = dneg.map { $0 + d } ?? d
        }
        return (dpos / (dneg! * (1 / Float(n)) + ratioEps)).mean()
    }
}

/// One level of the orthonormal 2-D Haar transform on 2×2 blocks `[a b; c d]`:
/// `LL = (a+b+c+d)/2` and details `(a−b+c−d)/2`, `(a+b−c−d)/2`, `(a−b−c+d)/2`.
///
/// - Parameter x: `[B, C, H, W]` with even H and W.
/// - Returns: `LL` `[B, C, H/2, W/2]` and the details `[B, C, 3, H/2, W/2]`.
public func haarLevel(_ x: Tensor) -> (low: Tensor, details: Tensor) {
    precondition(x.rank == 4 && x.shape[2] % 2 == 0 && x.shape[3] % 2 == 0, "haarLevel: need [B, C, H, W] with even H, W, got \(x.shape)")
    let (b, c, h, w) = (x.shape[0], x.shape[1], x.shape[2] / 2, x.shape[3] / 2)
    // pixelUnshuffle puts the 2×2 block of each pixel in channels c·4 + (2·row + column): a, b, c, d.
    let blocks = x.pixelUnshuffle(2).reshaped([b * c, 4, h * w])
    let haar = Tensor(shape: [4, 4], values: [0.5, 0.5, 0.5, 0.5,
                                              0.5, -0.5, 0.5, -0.5,
                                              0.5, 0.5, -0.5, -0.5,
                                              0.5, -0.5, -0.5, 0.5])
    let coefficients = Tensor.matmul(haar, blocks)                                 // [B·C, 4, h·w]
    let low = coefficients.slice(axis: 1, start: 0, end: 1).reshaped([b, c, h, w])
    let details = coefficients.slice(axis: 1, start: 1, end: 4).reshaped([b, c, 3, h, w])
    return (low, details)
}

/// How the wavelet loss compares the detail bands of one level.
public enum WaveletForm: String, Codable, CaseIterable, Sendable {
    /// The authors' form (wkd-datasets, `models/cycle_gan_model.py`, `optimize_parameters`):
    /// `mse_loss(teacher_high[j], student_high[j])`, the mean of squares over all three detail bands.
    case squared
    /// The mean absolute difference over the three detail bands (SwiftSKD's earlier definition).
    case absolute
}

/// Mean squared error over all elements (PyTorch's `MSELoss`, mean reduction).
///
/// - Parameters:
///   - x: any shape.
///   - y: the same shape as `x`.
/// - Returns: a shape-`[]` tensor.
public func mseLoss(_ x: Tensor, _ y: Tensor) -> Tensor {
    precondition(x.shape == y.shape, "mseLoss: \(x.shape) vs \(y.shape)")
    return (x - y).square().mean()
}

/// Wavelet knowledge distillation (Zhang et al., CVPR 2022):
/// `Σ_{j=1..J} D(details_j(S), details_j(T))` over `levels` Haar levels, recursing on LL (the low band itself is
/// unused), with `D` the mean of squares (`.squared`, the authors' code) or of absolute values (`.absolute`) over
/// all three detail bands of level j.
///
/// The authors call `pytorch_wavelets.DWTForward(J, mode='zero', wave='haar')`; with the 2-tap Haar filters and
/// sides divisible by 2^J (required here) zero padding adds no sample, so this transform is that one up to the
/// sign of detail filters, which neither form sees.
///
/// - Parameters:
///   - student: the student output `[B, C, H, W]`, H and W divisible by 2^levels.
///   - teacher: the teacher output, shaped like `student`.
///   - levels: J.
///   - form: `.squared` (default) or `.absolute`.
/// - Returns: a shape-`[]` tensor.
public func waveletLoss(student: Tensor, teacher: Tensor, levels: Int = 4, form: WaveletForm = .squared) -> Tensor {
    precondition(student.shape == teacher.shape, "waveletLoss: \(student.shape) vs \(teacher.shape)")
    precondition(student.shape[2] % (1 << levels) == 0 && student.shape[3] % (1 << levels) == 0,
                 "waveletLoss: \(levels) levels need H and W divisible by \(1 << levels), got \(student.shape)")
    var s = student, t = teacher
    var total: Tensor? = nil
    for _ in 0..<levels {
        let (sl, sd) = haarLevel(s), (tl, td) = haarLevel(t)
        let term = form == .squared ? mseLoss(sd, td) : l1Loss(sd, td)
        total = total.map { $0 + term } ?? term
        s = sl; t = tl
    }
    return total ?? Tensor(0)
}
