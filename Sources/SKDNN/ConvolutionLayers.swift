// Convolution, resampling and normalisation layers: thin modules over the SKDTensor ops, holding parameters
// under PyTorch's names and PyTorch's default initialisation.

import SKDTensor

/// A 2-D convolution (`nn.Conv2d` with square kernels and symmetric padding).
///
/// Parameters: `weight` `[outChannels, inChannels/groups, k, k]` (kaiming-uniform, a = √5) and `bias`
/// `[outChannels]` (U(±1/√fanIn)), as PyTorch initialises them.
public final class Conv2d: Module, UnaryLayer {
    /// `[outChannels, inChannels/groups, k, k]`.
    public var weight: Tensor
    /// `[outChannels]`, or `nil`.
    public var bias: Tensor?
    /// Geometry of the convolution.
    public let stride: Int, padding: Int, dilation: Int, groups: Int

    /// - Parameters:
    ///   - inChannels: input channels.
    ///   - outChannels: output channels.
    ///   - kernelSize: the kernel's height and width.
    ///   - stride, padding, dilation, groups: as PyTorch.
    ///   - bias: whether a learned bias is added.
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                dilation: Int = 1, groups: Int = 1, bias: Bool = true) {
        precondition(groups > 0 && inChannels % groups == 0 && outChannels % groups == 0,
                     "Conv2d: channels \(inChannels) → \(outChannels) not divisible by groups \(groups)")
        let shape = [outChannels, inChannels / groups, kernelSize, kernelSize]
        let fanIn = ParameterInit.fanIn(ofWeight: shape)
        weight = ParameterInit.kaimingUniform(shape, fanIn: fanIn)
        self.bias = bias ? ParameterInit.uniform([outChannels], bound: ParameterInit.defaultBiasBound(fanIn: fanIn)) : nil
        self.stride = stride; self.padding = padding; self.dilation = dilation; self.groups = groups
        super.init()
    }

    /// - Parameter x: `[N, inChannels, H, W]`.
    /// - Returns: `[N, outChannels, H', W']` with PyTorch's output size.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups)
    }

    /// Multiply-accumulates of one call on a `[1, inChannels, height, width]` input.
    public func multiplyAccumulates(height: Int, width: Int) -> Int {
        let k = weight.shape[2], span = dilation * (k - 1) + 1
        let ho = (height + 2 * padding - span) / stride + 1, wo = (width + 2 * padding - span) / stride + 1
        return ho * wo * weight.count
    }
}

/// A 2-D transposed convolution (`nn.ConvTranspose2d`, groups 1).
///
/// Parameters: `weight` `[inChannels, outChannels, k, k]` and `bias` `[outChannels]`; PyTorch computes the fan-in
/// of this layout as `outChannels·k·k`.
public final class ConvTranspose2d: Module, UnaryLayer {
    /// `[inChannels, outChannels, k, k]`.
    public var weight: Tensor
    /// `[outChannels]`, or `nil`.
    public var bias: Tensor?
    /// Geometry of the transposed convolution.
    public let stride: Int, padding: Int

    /// - Parameters:
    ///   - inChannels: input channels.
    ///   - outChannels: output channels.
    ///   - kernelSize: the kernel's height and width.
    ///   - stride, padding: as PyTorch.
    ///   - bias: whether a learned bias is added.
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true) {
        let shape = [inChannels, outChannels, kernelSize, kernelSize]
        let fanIn = ParameterInit.fanIn(ofWeight: shape)
        weight = ParameterInit.kaimingUniform(shape, fanIn: fanIn)
        self.bias = bias ? ParameterInit.uniform([outChannels], bound: ParameterInit.defaultBiasBound(fanIn: fanIn)) : nil
        self.stride = stride; self.padding = padding
        super.init()
    }

    /// - Parameter x: `[N, inChannels, H, W]`.
    /// - Returns: `[N, outChannels, (H−1)·stride − 2·padding + k, …]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.convTranspose2d(x, weight: weight, bias: bias, stride: stride, padding: padding)
    }

    /// Multiply-accumulates of one call on a `[1, inChannels, height, width]` input (each input pixel meets the whole kernel).
    public func multiplyAccumulates(height: Int, width: Int) -> Int { height * width * weight.count }
}

/// `[N, C·r², H, W] → [N, C, H·r, W·r]` (`nn.PixelShuffle`).
public final class PixelShuffle: Module, UnaryLayer {
    /// The upscale factor r.
    public let factor: Int
    /// - Parameter factor: r.
    public init(_ factor: Int) { self.factor = factor; super.init() }
    /// - Parameter x: `[N, C·r², H, W]`.
    /// - Returns: `[N, C, H·r, W·r]`.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.pixelShuffle(factor) }
}

/// `[N, C, H·r, W·r] → [N, C·r², H, W]` (`nn.PixelUnshuffle`).
public final class PixelUnshuffle: Module, UnaryLayer {
    /// The downscale factor r.
    public let factor: Int
    /// - Parameter factor: r.
    public init(_ factor: Int) { self.factor = factor; super.init() }
    /// - Parameter x: `[N, C, H·r, W·r]`.
    /// - Returns: `[N, C·r², H, W]`.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.pixelUnshuffle(factor) }
}

/// Layer normalisation over the last axis (`nn.LayerNorm(dim)`): the token LayerNorm of Uformer.
///
/// Parameters: `weight` `[dim]` (ones) and `bias` `[dim]` (zeros) or `nil`.
public final class LayerNorm: Module, UnaryLayer {
    /// `[dim]`.
    public var weight: Tensor
    /// `[dim]`, or `nil`.
    public var bias: Tensor?
    /// The variance guard.
    public let eps: Float

    /// - Parameters:
    ///   - dim: the size of the normalised last axis.
    ///   - eps: added to the variance.
    ///   - bias: whether a learned shift is added.
    public init(_ dim: Int, eps: Float = 1e-5, bias: Bool = true) {
        weight = ParameterInit.ones([dim])
        self.bias = bias ? ParameterInit.zeros([dim]) : nil
        self.eps = eps
        super.init()
    }

    /// - Parameter x: `[..., dim]`.
    /// - Returns: the same shape.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.layerNorm(weight: weight, bias: bias, eps: eps) }
}
