// Layers with one input and one output, and the parameterless activations as modules.
//
// Activations are modules (not functions) so that a Swift `[UnaryLayer]` built like a PyTorch
// `nn.Sequential` has its parameterised layers at the same indices: `body.0.weight`, `body.2.weight`.

import SKDTensor

/// A module mapping one tensor to one tensor.
///
/// A class-bound protocol rather than a base class: any `Module` subclass (whatever it inherits from) can conform,
/// a `[UnaryLayer]` property is discovered by `Module` as the children `name.0`, `name.1`, … (the array casts to
/// `[Module]`), and such an array runs in order with `applySequence(_:to:)`.
public protocol UnaryLayer: Module {
    /// The layer's forward pass; shapes are documented by each conforming type.
    func callAsFunction(_ x: Tensor) -> Tensor
}

/// Runs `layers` one after the other on `x` (the forward pass of a PyTorch `nn.Sequential`).
///
/// - Parameter x: the first layer's input; the last layer's output is returned.
public func applySequence(_ layers: [UnaryLayer], to x: Tensor) -> Tensor {
    var y = x
    for layer in layers { y = layer(y) }
    return y
}

/// PyTorch's `nn.Sequential` as a module of its own: its layers are named `0`, `1`, … directly under it.
///
/// Use it where PyTorch nests a Sequential inside a Sequential (`body.0.1.weight`); a plain `[UnaryLayer]`
/// property does the same for a Sequential that is a module's attribute.
public final class Sequential: Module, UnaryLayer {
    /// The layers, run in order.
    public var layers: [UnaryLayer]

    /// A sequence of `layers`.
    public init(_ layers: [UnaryLayer]) {
        self.layers = layers
        super.init()
    }

    /// A sequence of `layers`.
    public convenience init(_ layers: UnaryLayer...) { self.init(layers) }

    /// The layers as children `"0"`, `"1"`, …
    public override func members() -> [ModuleMember] {
        layers.enumerated().map { .child(name: String($0.offset), module: $0.element) }
    }

    /// - Parameter x: the first layer's input.
    /// - Returns: the last layer's output.
    public func callAsFunction(_ x: Tensor) -> Tensor { applySequence(layers, to: x) }
}

/// Returns its input unchanged (`nn.Identity`).
public final class Identity: Module, UnaryLayer {
    /// The identity layer.
    public override init() { super.init() }
    /// - Parameter x: any shape; returned as is.
    public func callAsFunction(_ x: Tensor) -> Tensor { x }
}

/// `max(x, 0)` element-wise (`nn.ReLU`).
public final class ReLU: Module, UnaryLayer {
    /// The ReLU layer.
    public override init() { super.init() }
    /// - Parameter x: any shape; the result has the same shape.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.relu() }
}

/// The exact (erf-based) GELU element-wise (`nn.GELU()` with `approximate='none'`).
public final class GELU: Module, UnaryLayer {
    /// The GELU layer.
    public override init() { super.init() }
    /// - Parameter x: any shape; the result has the same shape.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.gelu() }
}

/// `x` for `x ≥ 0`, `slope · x` otherwise (`nn.LeakyReLU(negative_slope)`).
public final class LeakyReLU: Module, UnaryLayer {
    /// The negative-side slope.
    public let slope: Float
    /// A leaky ReLU with `slope` (PyTorch's default 0.01).
    public init(_ slope: Float = 0.01) {
        self.slope = slope
        super.init()
    }
    /// - Parameter x: any shape; the result has the same shape.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.leakyRelu(slope) }
}

/// `1 / (1 + e^(−x))` element-wise (`nn.Sigmoid`).
public final class Sigmoid: Module, UnaryLayer {
    /// The sigmoid layer.
    public override init() { super.init() }
    /// - Parameter x: any shape; the result has the same shape.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.sigmoid() }
}

/// `tanh(x)` element-wise (`nn.Tanh`).
public final class Tanh: Module, UnaryLayer {
    /// The tanh layer.
    public override init() { super.init() }
    /// - Parameter x: any shape; the result has the same shape.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.tanh() }
}

/// A fully connected layer over the last axis, `y = x·Wᵀ + b` (`nn.Linear`).
///
/// Parameters (PyTorch names): `weight` `[outFeatures, inFeatures]` and `bias` `[outFeatures]`, both drawn from
/// U(−1/√inFeatures, 1/√inFeatures) by `ParameterInit`, as PyTorch's default initialisation.
public final class Linear: Module, UnaryLayer {
    /// `[outFeatures, inFeatures]`.
    public var weight: Tensor
    /// `[outFeatures]`, or `nil` for a layer without bias.
    public var bias: Tensor?

    /// The number of input features (the last axis of the input).
    public var inFeatures: Int { weight.shape[1] }
    /// The number of output features (the last axis of the output).
    public var outFeatures: Int { weight.shape[0] }

    /// A linear layer with freshly initialised parameters.
    ///
    /// - Parameters:
    ///   - inFeatures: the size of the input's last axis.
    ///   - outFeatures: the size of the output's last axis.
    ///   - bias: whether the layer adds a learned bias.
    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true) {
        precondition(inFeatures >= 0 && outFeatures >= 0, "Linear: negative feature count in (\(inFeatures), \(outFeatures))")
        weight = ParameterInit.kaimingUniform([outFeatures, inFeatures], fanIn: inFeatures)
        self.bias = bias ? ParameterInit.uniform([outFeatures], bound: ParameterInit.defaultBiasBound(fanIn: inFeatures)) : nil
        super.init()
    }

    /// - Parameter x: `[..., inFeatures]`.
    /// - Returns: `[..., outFeatures]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.rank >= 1 && x.shape[x.rank - 1] == inFeatures,
                     "Linear(\(inFeatures) → \(outFeatures)): input shape \(x.shape) does not end in \(inFeatures)")
        return Tensor.linear(x, weight: weight, bias: bias)
    }
}
