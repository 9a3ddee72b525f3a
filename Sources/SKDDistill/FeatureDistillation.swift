// Feature-level distillation: projectors from the student's tap channels to the teacher's, and the per-tap
// SKD loss  GK(s, t) + α1·(GK(s_c, t) + GK(s_s, t))  with the multi-dimensional cross-net attention branches.

import Foundation
import SKDNN
import SKDTensor

/// Switches and weights of the feature-level loss.
public struct FeatureLossOptions: Codable, Equatable, Sendable {
    /// σ of the Gaussian kernel.
    public var sigma: Float = 1
    /// α1: the weight of the two attention branches relative to the plain GK term.
    public var alpha1: Float = 0.5
    /// Use the channel (C×C) branch (Table III ablation).
    public var channelBranch = true
    /// Use the spatial (HW×HW) branch (Table III ablation).
    public var spatialBranch = true
    /// Apply the spatial branch only at taps with at most this many tokens (H·W); `nil` means everywhere.
    ///
    /// The spatial branch costs about 2·C·N² multiply-adds forward and 5·C·N² backward per sample: at a 128×128
    /// tap (N = 16384, C = 48) that is 13 GMAC forward alone, which is why CPU runs bound it. The default, 4096,
    /// covers every tap at or below 64×64 — with 128×128 crops, all but the full-resolution level.
    public var spatialTokenThreshold: Int? = 4096
    /// Rows of the spatial attention map computed per tile (`nil`: about 8 MiB per tile buffer).
    public var spatialTileRows: Int? = nil

    /// The defaults: σ = 1, α1 = 0.5, both branches, spatial threshold 4096 tokens.
    public init() {}
}

/// The terms of one tap's feature loss, kept apart for logging.
public struct FeatureLossTerms {
    /// `GK(s, t)`, shape `[]`.
    public var plain: Tensor
    /// `GK(s_c, t)`, shape `[]`, when the channel branch ran.
    public var channel: Tensor?
    /// `GK(s_s, t)`, shape `[]`, when the spatial branch ran.
    public var spatial: Tensor?
    /// `plain + α1·(channel + spatial)`, shape `[]`.
    public var total: Tensor
}

/// The SKD feature loss at one tap.
///
/// - Parameters:
///   - projected: the projected student feature `s`, `[B, C, H, W]` (C = the teacher's channels).
///   - teacher: the teacher feature `t`, `[B, C, H, W]`, without history.
///   - options: switches, σ, α1, the spatial threshold.
public func featureLoss(projected: Tensor, teacher: Tensor, options: FeatureLossOptions = FeatureLossOptions()) -> FeatureLossTerms {
    let plain = gaussianKernelLoss(projected, teacher, sigma: options.sigma)
    var channel: Tensor? = nil, spatial: Tensor? = nil
    if options.channelBranch {
        channel = gaussianKernelLoss(channelCrossAttention(student: projected, teacher: teacher), teacher, sigma: options.sigma)
    }
    let tokens = projected.shape[2] * projected.shape[3]
    if options.spatialBranch, tokens <= (options.spatialTokenThreshold ?? Int.max) {
        let attended = spatialCrossAttention(student: projected, teacher: teacher, tileRows: options.spatialTileRows)
        spatial = gaussianKernelLoss(attended, teacher, sigma: options.sigma)
    }
    var total = plain
    if let branches = [channel, spatial].compactMap({ $0 }).reduce(nil, { (acc: Tensor?, t: Tensor) in acc.map { $0 + t } ?? t }) {
        total = plain + branches * options.alpha1
    }
    return FeatureLossTerms(plain: plain, channel: channel, spatial: spatial, total: total)
}

/// One 1×1 convolution with bias per tap, mapping the student's channels to the teacher's.
/// Trained with the student; saved in its checkpoints as `projectors.<i>.weight` / `.bias`, in `taps` order.
public final class Projectors: Module {
    /// The tap names, in the order of `projectors`.
    public let _taps: [String]
    /// `projectors[i]`: `Conv2d(studentChannels[i] → teacherChannels[i], 1×1, bias)`.
    public let projectors: [Conv2d]

    /// - Parameters:
    ///   - taps: the tap names.
    ///   - studentChannels: the student's channel count at each tap.
    ///   - teacherChannels: the teacher's channel count at each tap.
    public init(taps: [String], studentChannels: [Int], teacherChannels: [Int]) {
        precondition(taps.count == studentChannels.count && taps.count == teacherChannels.count,
                     "Projectors: \(taps.count) taps, \(studentChannels.count) student and \(teacherChannels.count) teacher channel counts")
        _taps = taps
        projectors = zip(studentChannels, teacherChannels).map { Conv2d($0, $1, kernelSize: 1, bias: true) }
        super.init()
    }

    /// Projects the student feature at `tap`.
    ///
    /// - Parameter feature: `[B, C_student, H, W]`.
    /// - Returns: `[B, C_teacher, H, W]`.
    public func project(_ feature: Tensor, tap: String) -> Tensor {
        guard let i = _taps.firstIndex(of: tap) else { preconditionFailure("Projectors: no projector for tap \(tap); have \(_taps)") }
        return projectors[i](feature)
    }
}
