// φ of the contrastive loss as in the paper: frozen ImageNet VGG-19 features at relu1_1 … relu5_1, weighted
// 1/32, 1/16, 1/8, 1/4, 1 (the weights of AECR-Net's contrastive regularisation, deeper layers counting more).

import Foundation
import SKDModels
import SKDNN
import SKDTensor

/// A frozen VGG-19 (torchvision layout) as the contrastive feature space.
///
/// The weights come from torchvision's ImageNet VGG-19 converted to safetensors (Docs/user-guide.md shows the
/// few lines of Python): the keys of a whole model (`features.N.weight`, classifier keys ignored) or of
/// `vgg19().features` alone (`N.weight`) are both accepted.
public final class VGGFeatureExtractor: ContrastiveFeatureExtractor {
    /// The network, truncated after relu5_1, frozen and in eval mode.
    public let network: VGG19Features
    /// The layers φ returns, in order.
    public let layers: [String]

    /// "VGG-19 relu1_1, …", for logs.
    public var summary: String { "VGG-19 \(layers.joined(separator: ", "))" }
    /// relu1_1 → 1/32, relu2_1 → 1/16, relu3_1 → 1/8, relu4_1 → 1/4, relu5_1 → 1 (1 for any other layer).
    public var defaultWeights: [Float] {
        let byLayer: [String: Float] = ["relu1_1": 1.0 / 32, "relu2_1": 1.0 / 16, "relu3_1": 1.0 / 8, "relu4_1": 1.0 / 4, "relu5_1": 1]
        return layers.map { byLayer[$0] ?? 1 }
    }

    /// A VGG-19 feature extractor with given parameters.
    ///
    /// - Parameters:
    ///   - network: VGG-19 features containing `layers`; it is frozen and put in eval mode here.
    ///   - layers: tap names of `network`, shallowest first.
    public init(network: VGG19Features, layers: [String] = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]) {
        precondition(layers.allSatisfy(network.tapNames.contains), "VGGFeatureExtractor: layers \(layers) not all among \(network.tapNames)")
        self.network = network
        self.layers = layers
        network.freeze()
        network.eval()
    }

    /// Reads torchvision VGG-19 weights from a safetensors file.
    ///
    /// - Parameter layers: the standard taps φ uses (relu1_1 … relu5_1); the network is built through the deepest.
    /// - Throws: `RunConfigurationError` naming the file when it cannot be read or lacks a needed convolution.
    public convenience init(weights url: URL, layers: [String] = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]) throws {
        let deepest = layers.max { (VGG19Features.standardTaps[$0] ?? -1) < (VGG19Features.standardTaps[$1] ?? -1) }
        guard let deepest, layers.allSatisfy({ VGG19Features.standardTaps[$0] != nil }), let config = VGG19FeaturesConfig.through(deepest) else {
            throw RunConfigurationError("VGG-19 layers \(layers): expected some of relu1_1, relu2_1, relu3_1, relu4_1, relu5_1")
        }
        let file: SafeTensorsFile
        do { file = try SafeTensors.read(url) } catch { throw RunConfigurationError("\(error)") }
        let network = VGG19Features(config: config)
        var tensors: [String: Tensor] = [:]
        for (key, value) in file.tensors {
            tensors[key.hasPrefix("features.") ? key : "features." + key] = value
        }
        let needed = network.stateDict()
        let missing = needed.keys.filter { tensors[$0] == nil }.sorted { $0.compare($1, options: .numeric) == .orderedAscending }
        guard missing.isEmpty else {
            throw RunConfigurationError("\(url.path): not VGG-19 weights through \(deepest): missing \(missing.prefix(4).joined(separator: ", "))\(missing.count > 4 ? " and \(missing.count - 4) more" : "")")
        }
        do { try network.load(tensors.filter { needed[$0.key] != nil }, strict: true) } catch {
            throw RunConfigurationError("\(url.path): the tensors do not fit VGG-19: \(error)")
        }
        self.init(network: network, layers: layers.sorted { VGG19Features.standardTaps[$0]! < VGG19Features.standardTaps[$1]! })
    }

    /// φ_l of `images` for each layer.
    ///
    /// - Parameter images: `[B, 3, H, W]` in [−1, 1]; ImageNet normalisation is applied here (differentiably).
    /// - Returns: `[B, C_l, H / 2^k, W / 2^k]` per layer, in `layers` order.
    public func features(_ images: Tensor) -> [Tensor] {
        let taps = FeatureTaps(Set(layers))
        _ = network.forward(VGG19Features.imageNetNormalized(images), taps: taps)
        return layers.map { taps[$0]! }
    }
}
