// DCKD's cross path (our reading of Fang et al., "Dual cross knowledge distillation for image super-resolution",
// JVCIR 2023): a (projected) student feature replaces the teacher's own feature at one tap and the teacher's
// remaining blocks run on it, so the student is supervised through the teacher's layers.

import Foundation
import SKDModels
import SKDNN
import SKDTensor

/// A teacher whose forward pass can continue from one of its taps with a substituted feature.
///
/// Skip connections the remaining blocks need from levels *before* the substituted tap come from the teacher's own
/// forward pass (`skips`, recorded by `forward(_:taps:)` with `skipTaps`); encoder levels after it are recomputed
/// from the substituted feature, so an encoder tap also changes the skips the decoder receives from later levels.
public protocol CascadableTeacher: TappedModel {
    /// The taps a cascade can start from, in forward order.
    var cascadeTaps: [String] { get }
    /// The taps `cascade(from:feature:skips:input:)` reads from `skips`.
    var skipTaps: [String] { get }
    /// The network output when the feature at `tap` is replaced by `feature`.
    ///
    /// - Parameters:
    ///   - tap: one of `cascadeTaps`.
    ///   - feature: `[B, C_tap, h, w]`, shaped like the teacher's own feature at `tap` (gradients flow into it).
    ///   - skips: the teacher's own features at `skipTaps` for this batch (no history needed).
    ///   - input: the network input `[B, 3, H, W]` (the global residual).
    /// - Returns: `[B, 3, H, W]`.
    func cascade(from tap: String, feature: Tensor, skips: FeatureTaps, input: Tensor) -> Tensor
}

/// The U-shaped encoder–decoder Restormer and DRSformer share, continued from cascade level `start`
/// (0 encoder_level1, 1 encoder_level2, 2 encoder_level3, 3 latent, 4 decoder_level3, 5 decoder_level2,
/// 6 decoder_level1); returns the decoder_level1 output.
///
/// - Parameters:
///   - skip: the teacher's own encoder_level1…3 outputs (read only for levels before `start`).
///   - encoder: `encoder[k]` computes encoder level k (1…3, 3 = latent) from level k−1; `encoder[0]` is unused.
///   - decoder: `[0]` decoder_level3 from (latent, enc3); `[1]` decoder_level2 from (dec3, enc2); `[2]` decoder_level1
///     from (dec2, enc1).
private func cascadeUNet(start: Int, feature: Tensor, skip: (String) -> Tensor,
                         encoder: [(Tensor) -> Tensor], decoder: [(Tensor, Tensor) -> Tensor]) -> Tensor {
    let names = ["encoder_level1", "encoder_level2", "encoder_level3"]
    var enc = [Tensor?](repeating: nil, count: 4)
    for level in 0..<min(start, 3) { enc[level] = skip(names[level]) }
    if start <= 3 {
        enc[start] = feature
        for level in (start + 1)..<4 { enc[level] = encoder[level](enc[level - 1]!) }
    }
    if start == 6 { return feature }
    let d2: Tensor
    if start == 5 {
        d2 = feature
    } else {
        let d3 = start == 4 ? feature : decoder[0](enc[3]!, enc[2]!)
        d2 = decoder[1](d3, enc[1]!)
    }
    return decoder[2](d2, enc[0]!)
}

extension Restormer: CascadableTeacher {
    /// encoder_level1 … decoder_level1.
    public var cascadeTaps: [String] {
        ["encoder_level1", "encoder_level2", "encoder_level3", "latent", "decoder_level3", "decoder_level2", "decoder_level1"]
    }
    /// encoder_level1…3 (the decoder's skips) and patch_embed (the dual-pixel skip).
    public var skipTaps: [String] { ["patch_embed", "encoder_level1", "encoder_level2", "encoder_level3"] }

    /// See `CascadableTeacher`.
    public func cascade(from tap: String, feature: Tensor, skips: FeatureTaps, input: Tensor) -> Tensor {
        guard let start = cascadeTaps.firstIndex(of: tap) else { preconditionFailure("Restormer.cascade: \(tap) is not one of \(cascadeTaps)") }
        func run(_ blocks: [RestormerTransformerBlock], _ x: Tensor) -> Tensor { blocks.reduce(x) { $1($0) } }
        func skip(_ name: String) -> Tensor {
            guard let t = skips[name] else { preconditionFailure("Restormer.cascade: the teacher's \(name) was not recorded") }
            return t
        }
        let level1 = cascadeUNet(
            start: start, feature: feature, skip: skip,
            encoder: [{ $0 }, { run(self.encoderLevel2, self.down1To2($0)) }, { run(self.encoderLevel3, self.down2To3($0)) }, { run(self.latent, self.down3To4($0)) }],
            decoder: [
                { lat, e3 in run(self.decoderLevel3, self.reduceChannelsLevel3(Tensor.concat([self.up4To3(lat), e3], axis: 1))) },
                { d3, e2 in run(self.decoderLevel2, self.reduceChannelsLevel2(Tensor.concat([self.up3To2(d3), e2], axis: 1))) },
                { d2, e1 in run(self.decoderLevel1, Tensor.concat([self.up2To1(d2), e1], axis: 1)) },
            ])
        let refined = run(refinement, level1)
        if let skipConv { return output(refined + skipConv(skip("patch_embed"))) }
        return output(refined) + input
    }
}

extension DRSformer: CascadableTeacher {
    /// encoder_level1 … decoder_level1.
    public var cascadeTaps: [String] {
        ["encoder_level1", "encoder_level2", "encoder_level3", "latent", "decoder_level3", "decoder_level2", "decoder_level1"]
    }
    /// encoder_level1…3 (the decoder's skips).
    public var skipTaps: [String] { ["encoder_level1", "encoder_level2", "encoder_level3"] }

    /// See `CascadableTeacher`.
    public func cascade(from tap: String, feature: Tensor, skips: FeatureTaps, input: Tensor) -> Tensor {
        guard let start = cascadeTaps.firstIndex(of: tap) else { preconditionFailure("DRSformer.cascade: \(tap) is not one of \(cascadeTaps)") }
        func run(_ blocks: [DRSformerTransformerBlock], _ x: Tensor) -> Tensor { blocks.reduce(x) { $1($0) } }
        func skip(_ name: String) -> Tensor {
            guard let t = skips[name] else { preconditionFailure("DRSformer.cascade: the teacher's \(name) was not recorded") }
            return t
        }
        var level1 = cascadeUNet(
            start: start, feature: feature, skip: skip,
            encoder: [{ $0 }, { run(self.encoderLevel2, self.down1To2($0)) }, { run(self.encoderLevel3, self.down2To3($0)) },
                      { run(self.latent, self.down3To4($0)) }],
            decoder: [
                { lat, e3 in run(self.decoderLevel3, self.reduceChannelsLevel3(Tensor.concat([self.up4To3(lat), e3], axis: 1))) },
                { d3, e2 in run(self.decoderLevel2, self.reduceChannelsLevel2(Tensor.concat([self.up3To2(d3), e2], axis: 1))) },
                { d2, e1 in run(self.decoderLevel1, Tensor.concat([self.up2To1(d2), e1], axis: 1)) },
            ])
        if let refinement { level1 = refinement(level1) }
        return output(level1) + input
    }
}

/// A teacher whose encoder can be run one segment (one transformer block, embedding or downsampling) at a time,
/// so that φ(S) through it can be gradient-checkpointed segment by segment (`TeacherEncoderFeatures`).
///
/// Every segment must treat the samples of a batch independently (it is recomputed on slices of the batch).
public protocol SegmentedEncoder: TappedModel {
    /// The encoder from the image to the bottleneck, in forward order: each segment maps the previous one's
    /// output (the first, the network input `[B, 3, H, W]`) to its own; `tap` names the tap that a segment's
    /// output is (the same tensor `forward(_:taps:)` records), `nil` for inner segments.
    var encoderSegments: [(tap: String?, run: (Tensor) -> Tensor)] { get }
}

/// The functions of one level's blocks as segments, the last one tagged with `tap`.
private func blockSegments(_ blocks: [(Tensor) -> Tensor], tap: String) -> [(tap: String?, run: (Tensor) -> Tensor)] {
    blocks.enumerated().map { index, block in (tap: index == blocks.count - 1 ? tap : nil, run: block) }
}

extension Restormer: SegmentedEncoder {
    /// patch_embed, the blocks of encoder_level1…3 with the downsamplings between them, down3_4 and latent.
    public var encoderSegments: [(tap: String?, run: (Tensor) -> Tensor)] {
        [(tap: "patch_embed", run: { self.patchEmbed($0) })]
            + blockSegments(encoderLevel1.map { b in { b($0) } }, tap: "encoder_level1")
            + [(tap: nil, run: { self.down1To2($0) })] + blockSegments(encoderLevel2.map { b in { b($0) } }, tap: "encoder_level2")
            + [(tap: nil, run: { self.down2To3($0) })] + blockSegments(encoderLevel3.map { b in { b($0) } }, tap: "encoder_level3")
            + [(tap: nil, run: { self.down3To4($0) })] + blockSegments(latent.map { b in { b($0) } }, tap: "latent")
    }
}

extension DRSformer: SegmentedEncoder {
    /// patch_embed, encoder_level0 (with MEFC), the blocks of encoder_level1…3 with the downsamplings between
    /// them, down3_4 and latent.
    public var encoderSegments: [(tap: String?, run: (Tensor) -> Tensor)] {
        var segments: [(tap: String?, run: (Tensor) -> Tensor)] = [(tap: "patch_embed", run: { self.patchEmbed($0) })]
        if let level0 = encoderLevel0 { segments.append((tap: "encoder_level0", run: { level0($0) })) }
        return segments
            + blockSegments(encoderLevel1.map { b in { b($0) } }, tap: "encoder_level1")
            + [(tap: nil, run: { self.down1To2($0) })] + blockSegments(encoderLevel2.map { b in { b($0) } }, tap: "encoder_level2")
            + [(tap: nil, run: { self.down2To3($0) })] + blockSegments(encoderLevel3.map { b in { b($0) } }, tap: "encoder_level3")
            + [(tap: nil, run: { self.down3To4($0) })] + blockSegments(latent.map { b in { b($0) } }, tap: "latent")
    }
}
