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
///
/// One op: the forward keeps only the per-pixel kernel values `[B, H, W]` for the backward (the composed
/// `(x − y).square().mean(axis: 1)`, `exp`, `mean` chain would record three `[B, C, H, W]` tensors per call, and
/// SKD calls it three times per tap). Checked against that composition in `GaussianKernelTests`.
public func gaussianKernelLoss(_ x: Tensor, _ y: Tensor, sigma: Float = 1) -> Tensor {
    precondition(x.shape == y.shape && x.rank == 4, "gaussianKernelLoss: \(x.shape) vs \(y.shape), expected equal [B, C, H, W]")
    let (b, c, p) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
    let coefficient = -1 / (2 * sigma * sigma)
    // kernel[b, p] = exp(coefficient · mean_c (x − y)²)
    let kernel = Tensor(uninitialized: [b, p])
    Parallel.forEach(b, cost: c * p) { range in
        for i in range {
            let k = kernel.pointer + i * p
            k.initialize(repeating: 0, count: p)
            for ch in 0..<c {
                let xr = x.pointer + (i * c + ch) * p, yr = y.pointer + (i * c + ch) * p
                for j in 0..<p {
                    let d = xr[j] - yr[j]
                    k[j] += d * d
                }
            }
            let scale = coefficient / Float(c)
            for j in 0..<p { k[j] = Foundation.exp(k[j] * scale) }
        }
    }
    var total = 0.0
    for i in 0..<(b * p) { total += Double(1 - kernel.pointer[i]) }
    let out = Tensor(Float(total / Double(max(b * p, 1))))
    return out.recorded("gaussianKernelLoss", [x, y]) { g in
        // ∂L/∂x[b, ch, p] = g/(B·P) · (−kernel[b, p]) · coefficient · 2(x − y)/C ; ∂L/∂y = −∂L/∂x.
        let factor = -g.pointer[0] / Float(max(b * p, 1)) * coefficient * 2 / Float(c)
        let gx: Tensor? = x.requiresGrad ? Tensor(uninitialized: x.shape) : nil
        let gy: Tensor? = y.requiresGrad ? Tensor(uninitialized: y.shape) : nil
        Parallel.forEach(b * c, cost: p) { range in
            for row in range {
                let k = kernel.pointer + (row / c) * p
                let xr = x.pointer + row * p, yr = y.pointer + row * p
                if let gx {
                    let o = gx.pointer + row * p
                    for j in 0..<p { o[j] = factor * k[j] * (xr[j] - yr[j]) }
                    if let gy {
                        let oy = gy.pointer + row * p
                        for j in 0..<p { oy[j] = -o[j] }
                    }
                } else if let gy {
                    let oy = gy.pointer + row * p
                    for j in 0..<p { oy[j] = -factor * k[j] * (xr[j] - yr[j]) }
                }
            }
        }
        return [gx, gy]
    }
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
        return contrastiveRatioLoss(student: s, teacher: t, degraded: neg, eps: ratioEps)
    }
}

/// The ratio form of the contrastive loss as one op:
/// `mean_b( d(s_b, t_b) / (mean_q d(s_b, neg_q) + eps) )` with `d(x, y) = mean_j |x_j − y_j|`.
///
/// The same function as the composed `(s − t).abs().mean(axis: 1) / ((Σ_q (s − neg_q).abs().mean(axis: 1)) / N + eps)`
/// (checked against it in `ContrastiveRatioTests`), computed in one pass over the data forward and one backward,
/// recording nothing but its inputs: the composed form records two `[B, D]` tensors per negative. Sums run in
/// blocks of float lanes added up in double precision. The gradient of `|x|` at 0 is 0, as `Tensor.abs`'s.
///
/// - Parameters:
///   - student: `[B, D]` (gradients flow into it).
///   - teacher: the positives `[B, D]`.
///   - degraded: the negatives `[N, D]`.
///   - eps: the denominator guard.
/// - Returns: a shape-`[]` tensor.
public func contrastiveRatioLoss(student s: Tensor, teacher t: Tensor, degraded neg: Tensor, eps: Float = 1e-7) -> Tensor {
    precondition(s.rank == 2 && t.shape == s.shape && neg.rank == 2 && neg.shape[1] == s.shape[1] && neg.shape[0] >= 1,
                 "contrastiveRatioLoss: student \(s.shape), teacher \(t.shape), degraded \(neg.shape) must be [B, D], [B, D], [N, D]")
    let (b, d, n) = (s.shape[0], s.shape[1], neg.shape[0])
    // dpos[i] = d(s_i, t_i), dneg[i] = mean_q d(s_i, neg_q)
    var dpos = [Double](repeating: 0, count: b), dneg = [Double](repeating: 0, count: b)
    dpos.withUnsafeMutableBufferPointer { pos in
        dneg.withUnsafeMutableBufferPointer { negs in
            let pos = pos.baseAddress!, negs = negs.baseAddress!
            Parallel.forEach(b, cost: (n + 1) * d) { range in
                for i in range {
                    let si = UnsafePointer(s.pointer + i * d)
                    pos[i] = meanAbsoluteDifference(si, UnsafePointer(t.pointer + i * d), count: d)
                    var acc = 0.0
                    for q in 0..<n { acc += meanAbsoluteDifference(si, UnsafePointer(neg.pointer + q * d), count: d) }
                    negs[i] = acc / Double(n)
                }
            }
        }
    }
    var loss = 0.0
    for i in 0..<b { loss += dpos[i] / (dneg[i] + Double(eps)) }
    let out = Tensor(Float(loss / Double(b)))
    return out.recorded("contrastiveRatioLoss", [s, t, neg]) { g in
        let scale = Double(g.pointer[0]) / Double(b)
        // ∂L/∂dpos_i and ∂L/∂dneg_i (dneg already the mean over negatives, hence the 1/N on each term below).
        let gPos = (0..<b).map { Float(scale / (dneg[$0] + Double(eps)) / Double(d)) }
        let gNeg = (0..<b).map { Float(-scale * dpos[$0] / ((dneg[$0] + Double(eps)) * (dneg[$0] + Double(eps))) / Double(n * d)) }
        let gs: Tensor? = s.requiresGrad ? Tensor(uninitialized: s.shape) : nil
        let gt: Tensor? = t.requiresGrad ? Tensor(uninitialized: t.shape) : nil
        if gs != nil || gt != nil {
            Parallel.forEach(b, cost: (n + 1) * d) { range in
                for i in range {
                    let si = s.pointer + i * d, ti = t.pointer + i * d
                    let a = gPos[i], c = gNeg[i]
                    if let gs {
                        let o = gs.pointer + i * d
                        for j in 0..<d { o[j] = a * signum(si[j] - ti[j]) }
                        for q in 0..<n {
                            let nq = neg.pointer + q * d
                            for j in 0..<d { o[j] += c * signum(si[j] - nq[j]) }
                        }
                    }
                    if let gt {
                        let o = gt.pointer + i * d
                        for j in 0..<d { o[j] = -a * signum(si[j] - ti[j]) }
                    }
                }
            }
        }
        var gn: Tensor? = nil
        if neg.requiresGrad {
            let grad = Tensor(zeros: neg.shape)
            Parallel.forEach(n, cost: b * d) { range in
                for q in range {
                    let o = grad.pointer + q * d, nq = neg.pointer + q * d
                    for i in 0..<b {
                        let si = s.pointer + i * d, c = gNeg[i]
                        for j in 0..<d { o[j] -= c * signum(si[j] - nq[j]) }
                    }
                }
            }
            gn = grad
        }
        return [gs, gt, gn]
    }
}

/// `x > 0 ? 1 : (x < 0 ? −1 : 0)`: the derivative of `|x|` as `Tensor.abs` takes it.
@inline(__always)
private func signum(_ x: Float) -> Float { x > 0 ? 1 : (x < 0 ? -1 : 0) }

/// `mean_j |a_j − b_j|` over `count` elements: 16-lane float partial sums over blocks of 4096, added in double.
private func meanAbsoluteDifference(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Double {
    guard count > 0 else { return 0 }
    var total = 0.0
    var j = 0
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    while j < count {
        let end = Swift.min(count, j + 4096)
        var lanes = SIMD16<Float>(repeating: 0)
        while j + 16 <= end {
            let x = ra.loadUnaligned(fromByteOffset: j * 4, as: SIMD16<Float>.self)
            let y = rb.loadUnaligned(fromByteOffset: j * 4, as: SIMD16<Float>.self)
            let diff = x - y
            lanes += diff.replacing(with: -diff, where: diff .< 0)
            j += 16
        }
        var block = Double(lanes.sum())
        while j < end { block += Double(Swift.abs(a[j] - b[j])); j += 1 }
        total += block
    }
    return total / Double(count)
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
