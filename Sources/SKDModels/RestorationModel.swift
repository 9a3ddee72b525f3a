// What every model family (Restormer, Uformer, DRSformer, VGG-19 features) offers the rest of SwiftSKD.

import SKDNN
import SKDTensor

/// Collects intermediate outputs ("taps") of a forward pass by submodule name.
///
/// Names are the PyTorch attribute names of the official implementation (`encoder_level1`, `latent`,
/// `encoderlayer_0`, `relu3_1`, ...), so they line up with the `tap.<name>` tensors of the reference files and
/// with the distillation issue's tap lists. The recorded tensors keep their autodiff history: a student's taps
/// can be fed to a feature loss.
public final class FeatureTaps {
    /// The names to record; `nil` records every tap the model offers.
    public let wanted: Set<String>?
    /// Recorded outputs by tap name, in the layout the module produced (NCHW maps; tokens `[B, H·W, C]` for Uformer).
    public private(set) var features: [String: Tensor] = [:]
    /// The tap names in the order they were recorded.
    public private(set) var order: [String] = []

    /// Whether a forward pass may end as soon as every wanted tap is recorded (see `isComplete`).
    public let stopsEarly: Bool

    /// - Parameters:
    ///   - wanted: the tap names to keep; `nil` for all.
    ///   - stopsEarly: let the model end its forward pass once every wanted tap is recorded. Feature extractors
    ///     set it: a frozen teacher used as φ then runs (and, with gradients, records) only its encoder.
    public init(_ wanted: Set<String>? = nil, stopsEarly: Bool = false) {
        self.wanted = wanted
        self.stopsEarly = stopsEarly
    }

    /// True when `stopsEarly` is set and every wanted tap has been recorded: the model may return at once
    /// (its return value is then the last tap, not an image).
    public var isComplete: Bool {
        guard stopsEarly, let wanted else { return false }
        return wanted.allSatisfy { features[$0] != nil }
    }

    /// Records `tensor` under `name` when it is wanted, and returns it unchanged so calls can be chained.
    @discardableResult
    public func record(_ name: String, _ tensor: Tensor) -> Tensor {
        if wanted?.contains(name) ?? true {
            if features[name] == nil { order.append(name) }
            features[name] = tensor
        }
        return tensor
    }

    /// The recorded tensor named `name`.
    public subscript(name: String) -> Tensor? { features[name] }
}

/// A network that maps an image batch to an image batch and can expose its intermediate features.
///
/// Images are `[N, 3, H, W]` float32 (SwiftSKD trains in [−1, 1]; the models themselves are range-agnostic).
public protocol TappedModel: Module {
    /// The names of all taps `forward(_:taps:)` can record, in forward order.
    var tapNames: [String] { get }

    /// Runs the network, recording the outputs of the named submodules into `taps` when given.
    ///
    /// - Parameter x: `[N, 3, H, W]`.
    /// - Returns: the network output; `[N, 3, H, W]` for restoration models.
    func forward(_ x: Tensor, taps: FeatureTaps?) -> Tensor

    /// Input heights and widths must be multiples of this (8 for three 2× down-samplings); inference pads to it.
    var sizeMultiple: Int { get }
}

extension TappedModel {
    /// `forward(x, taps: nil)`.
    public func callAsFunction(_ x: Tensor) -> Tensor { forward(x, taps: nil) }

    /// Models that accept any size (padding internally) need no multiple.
    public var sizeMultiple: Int { 1 }
}
