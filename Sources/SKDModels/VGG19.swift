// VGG-19 convolutional features in torchvision's layout (`vgg19().features`), for perceptual and contrastive
// losses. Parameter names are torchvision's (`features.N.weight`), so its released ImageNet weights load as
// they are (the classifier keys of a full checkpoint are simply not used: load with `strict: false`).

import Foundation
import SKDNN
import SKDTensor

/// The arguments of a truncated VGG-19 feature extractor, as in the reference files' metadata
/// (`{"arch": "vgg19_features", "taps": {"relu1_1": 1, ...}}`): the taps by name and `features` index.
public struct VGG19FeaturesConfig: Codable, Equatable, Sendable {
    /// Tap name → index of the layer in `features` whose output it is.
    public var taps: [String: Int]

    enum CodingKeys: String, CodingKey { case taps }

    /// - Parameter taps: tap name → `features` index; defaults to all five standard taps.
    public init(taps: [String: Int] = VGG19Features.standardTaps) { self.taps = taps }

    /// Decodes `{"taps": {...}}`; other keys (`"arch"`) are ignored, a missing `taps` means the five standard taps.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        taps = try c.decodeIfPresent([String: Int].self, forKey: .taps) ?? VGG19Features.standardTaps
    }

    /// The standard taps up to and including `deepest` (one of relu1_1 … relu5_1); `nil` for an unknown name.
    public static func through(_ deepest: String) -> VGG19FeaturesConfig? {
        guard let last = VGG19Features.standardTaps[deepest] else { return nil }
        return VGG19FeaturesConfig(taps: VGG19Features.standardTaps.filter { $0.value <= last })
    }
}

/// A parameterless 2×2 max-pooling layer (stride 2), a Module so the `features` indices match torchvision.
public final class VGGMaxPool: Module, UnaryLayer {
    /// A 2×2, stride-2 max-pool (torchvision's `MaxPool2d(kernel_size=2, stride=2)`).
    public override init() { super.init() }

    /// - Parameter x: `[N, C, H, W]`.
    /// - Returns: `[N, C, ⌊H/2⌋, ⌊W/2⌋]`.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.maxPool2d(kernel: 2, stride: 2, padding: 0) }
}

/// torchvision's `vgg19().features`, truncated after the deepest wanted tap: 3×3 convolutions (padding 1)
/// each followed by ReLU, and 2×2 max-pooling at indices 4, 9, 18, 27 and 36.
///
/// Input `[N, 3, H, W]` already normalised with ImageNet statistics (see `imageNetNormalized(_:)`).
public final class VGG19Features: Module, TappedModel {
    /// torchvision's configuration "E": output channels of each convolution, 0 for a max-pool.
    static let layout = [64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0]

    /// The usual perceptual-loss taps: `relu1_1`, `relu2_1`, `relu3_1`, `relu4_1`, `relu5_1` at `features`
    /// indices 1, 6, 11, 20, 29.
    public static let standardTaps = ["relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20, "relu5_1": 29]

    /// The layers `features.0 …`: `Conv2d`, `ReLU` and `VGGMaxPool` modules.
    public var features: [UnaryLayer]
    /// The construction arguments.
    public let config: VGG19FeaturesConfig
    /// The tap names, in forward order.
    public let tapNames: [String]
    /// The `features` index of each tap, aligned with `tapNames`.
    private let tapIndices: [Int]

    /// Builds `vgg19().features[: max(taps) + 1]` with torchvision's default initialisation.
    ///
    /// - Parameter config: the taps; their indices must lie in `0 ..< 37`.
    public init(config: VGG19FeaturesConfig = VGG19FeaturesConfig()) {
        precondition(!config.taps.isEmpty, "VGG19Features: at least one tap is needed")
        var full: [UnaryLayer] = []
        var channels = 3
        for width in VGG19Features.layout {
            if width == 0 {
                full.append(VGGMaxPool())
            } else {
                full.append(Conv2d(channels, width, kernelSize: 3, padding: 1))
                full.append(ReLU())
                channels = width
            }
        }
        let deepest = config.taps.values.max()!
        precondition(config.taps.values.allSatisfy { $0 >= 0 && $0 < full.count },
                     "VGG19Features: tap indices \(config.taps) must lie in 0..<\(full.count)")
        features = Array(full[...deepest])
        self.config = config
        let ordered = config.taps.sorted { ($0.value, $0.key) < ($1.value, $1.key) }
        tapNames = ordered.map(\.key)
        tapIndices = ordered.map(\.value)
        super.init()
    }

    /// `init(config:)` with the standard taps up to `deepest` (e.g. `"relu3_1"` builds `features[:12]`).
    public convenience init(through deepest: String) {
        guard let config = VGG19FeaturesConfig.through(deepest) else {
            preconditionFailure("VGG19Features: unknown tap \(deepest); known: \(VGG19Features.standardTaps.keys.sorted())")
        }
        self.init(config: config)
    }

    /// Runs the truncated feature stack, recording each tap's output.
    ///
    /// - Parameter x: `[N, 3, H, W]`, ImageNet-normalised.
    /// - Returns: the output of the last layer (the deepest tap), `[N, C, H / 2^k, W / 2^k]`.
    public func forward(_ x: Tensor, taps: FeatureTaps?) -> Tensor {
        precondition(x.rank == 4 && x.shape[1] == 3, "VGG19Features: input must be [N, 3, H, W], got \(x.shape)")
        var y = x
        var nextTap = 0
        for (index, layer) in features.enumerated() {
            y = layer(y)
            while nextTap < tapIndices.count && tapIndices[nextTap] == index {
                taps?.record(tapNames[nextTap], y)
                nextTap += 1
            }
        }
        return y
    }

    /// The tap outputs by name for one forward pass.
    ///
    /// - Parameter x: `[N, 3, H, W]`, ImageNet-normalised.
    public func tapFeatures(_ x: Tensor) -> [String: Tensor] {
        let taps = FeatureTaps()
        _ = forward(x, taps: taps)
        return taps.features
    }

    /// Multiply–accumulates of the convolutions on a `1 × 3 × height × width` input.
    public func multiplyAccumulates(height: Int, width: Int) -> Int {
        var h = height, w = width, macs = 0
        for layer in features {
            if let conv = layer as? Conv2d { macs += conv.weight.count * h * w }
            if layer is VGGMaxPool { h /= 2; w /= 2 }
        }
        return macs
    }

    /// torchvision's ImageNet channel means, used by `imageNetNormalized(_:)`.
    public static let imageNetMean: [Float] = [0.485, 0.456, 0.406]
    /// torchvision's ImageNet channel standard deviations.
    public static let imageNetStd: [Float] = [0.229, 0.224, 0.225]

    /// Maps images in [−1, 1] to the input VGG expects: `((x + 1) / 2 − mean) / std` per channel.
    /// Differentiable; computed as the equivalent affine map `x · 0.5/std + (0.5 − mean)/std`.
    ///
    /// - Parameter x: `[N, 3, H, W]` in [−1, 1].
    /// - Returns: `[N, 3, H, W]`.
    public static func imageNetNormalized(_ x: Tensor) -> Tensor {
        precondition(x.rank == 4 && x.shape[1] == 3, "imageNetNormalized: input must be [N, 3, H, W], got \(x.shape)")
        let scale = Tensor(shape: [1, 3, 1, 1], values: (0..<3).map { 0.5 / imageNetStd[$0] })
        let shift = Tensor(shape: [1, 3, 1, 1], values: (0..<3).map { (0.5 - imageNetMean[$0]) / imageNetStd[$0] })
        return x * scale + shift
    }
}
