// The mixture-of-experts feature compensator (MEFC) of DRSformer: the official `subnet` with its `OALayer`
// (operation attention), `GroupOLs` (a chain of operation layers) and the primitive operations `SepConv`, `DilConv`
// and 3×3 average pooling. Names follow the official attributes so parameter names equal the state_dict keys
// (`layers.0.ca_fc.0.weight`, `layers.1._ops.2._ops.5.op.1.weight`, ...).

import Foundation
import SKDNN
import SKDTensor

// MARK: - Primitive operations

/// The official primitive list `Operations`, in its order (which fixes the `_ops.<j>` indices and the
/// channel order of the concatenation inside an operation layer).
public enum DRSformerOperation: String, CaseIterable {
    /// Separable convolutions (`SepConv`) with 1×1, 3×3, 5×5, 7×7 depthwise kernels.
    case sepConv1x1 = "sep_conv_1x1", sepConv3x3 = "sep_conv_3x3", sepConv5x5 = "sep_conv_5x5", sepConv7x7 = "sep_conv_7x7"
    /// Dilated separable convolutions (`DilConv`, dilation 2) with 3×3, 5×5, 7×7 depthwise kernels.
    case dilConv3x3 = "dil_conv_3x3", dilConv5x5 = "dil_conv_5x5", dilConv7x7 = "dil_conv_7x7"
    /// 3×3 average pooling without padded zeros in the count.
    case avgPool3x3 = "avg_pool_3x3"

    /// The official `OPS[name](C, stride: 1, affine: false)`.
    func make(channels c: Int) -> UnaryLayer {
        switch self {
        case .sepConv1x1: return DRSformerSepConv(inChannels: c, outChannels: c, kernelSize: 1, padding: 0)
        case .sepConv3x3: return DRSformerSepConv(inChannels: c, outChannels: c, kernelSize: 3, padding: 1)
        case .sepConv5x5: return DRSformerSepConv(inChannels: c, outChannels: c, kernelSize: 5, padding: 2)
        case .sepConv7x7: return DRSformerSepConv(inChannels: c, outChannels: c, kernelSize: 7, padding: 3)
        case .dilConv3x3: return DRSformerDilConv(inChannels: c, outChannels: c, kernelSize: 3, padding: 2, dilation: 2)
        case .dilConv5x5: return DRSformerDilConv(inChannels: c, outChannels: c, kernelSize: 5, padding: 4, dilation: 2)
        case .dilConv7x7: return DRSformerDilConv(inChannels: c, outChannels: c, kernelSize: 7, padding: 6, dilation: 2)
        case .avgPool3x3: return DRSformerAvgPool3x3()
        }
    }
}

/// The official `SepConv` (stride 1): depthwise k×k, 1×1, ReLU, depthwise k×k, 1×1; no biases.
public final class DRSformerSepConv: Module, UnaryLayer {
    /// `[dw k×k, 1×1, ReLU, dw k×k, 1×1]` (keys `op.0`, `op.1`, `op.3`, `op.4`).
    public var op: [UnaryLayer]

    /// - Parameters: inChannels/outChannels: channels; kernelSize/padding: of both depthwise convolutions.
    public init(inChannels: Int, outChannels: Int, kernelSize: Int, padding: Int) {
        op = [
            Conv2d(inChannels, inChannels, kernelSize: kernelSize, padding: padding, groups: inChannels, bias: false),
            Conv2d(inChannels, inChannels, kernelSize: 1, bias: false),
            ReLU(),
            Conv2d(inChannels, inChannels, kernelSize: kernelSize, padding: padding, groups: inChannels, bias: false),
            Conv2d(inChannels, outChannels, kernelSize: 1, bias: false),
        ]
        super.init()
    }

    /// - Parameter x: `[N, C_in, H, W]`. - Returns: `[N, C_out, H, W]`.
    public func callAsFunction(_ x: Tensor) -> Tensor { applySequence(op, to: x) }
}

/// The official `DilConv` (stride 1): depthwise k×k with dilation, then 1×1; no biases.
public final class DRSformerDilConv: Module, UnaryLayer {
    /// `[dw k×k dilated, 1×1]`.
    public var op: [UnaryLayer]

    /// - Parameters: inChannels/outChannels: channels; kernelSize, padding, dilation: of the depthwise convolution.
    public init(inChannels: Int, outChannels: Int, kernelSize: Int, padding: Int, dilation: Int) {
        op = [
            Conv2d(inChannels, inChannels, kernelSize: kernelSize, padding: padding, dilation: dilation, groups: inChannels, bias: false),
            Conv2d(inChannels, outChannels, kernelSize: 1, bias: false),
        ]
        super.init()
    }

    /// - Parameter x: `[N, C_in, H, W]`. - Returns: `[N, C_out, H, W]`.
    public func callAsFunction(_ x: Tensor) -> Tensor { applySequence(op, to: x) }
}

/// `nn.AvgPool2d(3, stride: 1, padding: 1, count_include_pad: false)`: border pixels average only the
/// in-image neighbours.
public final class DRSformerAvgPool3x3: Module, UnaryLayer {
    /// The pooling layer (no parameters).
    public override init() { super.init() }

    /// - Parameter x: `[N, C, H, W]`. - Returns: `[N, C, H, W]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        x.avgPool2d(kernel: 3, stride: 1, padding: 1, countIncludePad: false)
    }
}

/// The official `ReLUConv` (despite the name: 1×1 convolution, then ReLU).
public final class DRSformerReLUConv: Module, UnaryLayer {
    /// `[Conv2d(C_in, C_out, k), ReLU]`.
    public var op: [UnaryLayer]

    /// - Parameters: inChannels/outChannels: channels; kernelSize/padding: of the convolution (stride 1, no bias).
    public init(inChannels: Int, outChannels: Int, kernelSize: Int, padding: Int) {
        op = [Conv2d(inChannels, outChannels, kernelSize: kernelSize, padding: padding, bias: false), ReLU()]
        super.init()
    }

    /// - Parameter x: `[N, C_in, H, W]`. - Returns: `[N, C_out, H, W]`.
    public func callAsFunction(_ x: Tensor) -> Tensor { applySequence(op, to: x) }
}

// MARK: - Operation layers

/// The official `OperationLayer`: every primitive applied to the input, each scaled by its per-sample weight,
/// concatenated, then a 1×1 convolution back to C channels and ReLU.
///
/// The official attributes `_ops` and `_out` start with an underscore, which `Module`'s reflection skips, so
/// `members()` names them explicitly.
public final class DRSformerOperationLayer: Module {
    /// The primitives, in `DRSformerOperation` order (PyTorch `_ops`).
    public let operations: [UnaryLayer]
    /// `[Conv2d(8·C, C, 1), ReLU]` (PyTorch `_out`).
    public let outputLayers: [UnaryLayer]

    /// - Parameter channels: channels C.
    public init(channels: Int) {
        operations = DRSformerOperation.allCases.map { $0.make(channels: channels) }
        outputLayers = [Conv2d(channels * DRSformerOperation.allCases.count, channels, kernelSize: 1, bias: false), ReLU()]
        super.init()
    }

    /// `_ops.0` … `_ops.7`, `_out.0`, `_out.1`, as the official state_dict.
    public override func members() -> [ModuleMember] {
        operations.enumerated().map { .child(name: "_ops.\($0.offset)", module: $0.element) }
            + outputLayers.enumerated().map { .child(name: "_out.\($0.offset)", module: $0.element) }
    }

    /// - Parameters:
    ///   - x: `[N, C, H, W]`.
    ///   - weights: `[N, numOps]`, the softmaxed operation weights of each sample.
    /// - Returns: `[N, C, H, W]`.
    public func callAsFunction(_ x: Tensor, weights: Tensor) -> Tensor {
        let n = x.shape[0]
        precondition(weights.shape == [n, operations.count],
                     "DRSformerOperationLayer: weights must be [\(n), \(operations.count)], got \(weights.shape)")
        let states = operations.enumerated().map { j, op -> Tensor in
            op(x) * weights.slice(axis: 1, start: j, end: j + 1).reshaped([n, 1, 1, 1])
        }
        return applySequence(outputLayers, to: Tensor.concat(states, axis: 1))
    }

    /// MACs of every convolution on an `H×W` map.
    public func multiplyAccumulates(height: Int, width: Int) -> Int {
        var total = 0
        for layer in operations + outputLayers {
            let convs = (layer as? DRSformerSepConv)?.op ?? (layer as? DRSformerDilConv)?.op ?? [layer]
            for case let conv as Conv2d in convs { total += conv.multiplyAccumulates(height: height, width: width) }
        }
        return total
    }
}

/// The official `GroupOLs`: a 1×1 convolution with ReLU, then `steps` operation layers, each with a residual
/// connection followed by ReLU. `members()` names the underscored official attribute `_ops`.
public final class DRSformerGroupOLs: Module {
    /// `ReLUConv(C, C, 1)`.
    public let preprocess: DRSformerReLUConv
    /// One operation layer per step (PyTorch `_ops`).
    public let operations: [DRSformerOperationLayer]
    /// The ReLU after each residual sum.
    public let relu = ReLU()

    /// - Parameters: steps: operation layers; channels: channels C.
    public init(steps: Int, channels: Int) {
        preprocess = DRSformerReLUConv(inChannels: channels, outChannels: channels, kernelSize: 1, padding: 0)
        operations = (0..<steps).map { _ in DRSformerOperationLayer(channels: channels) }
        super.init()
    }

    /// `preprocess`, `_ops.0` … `_ops.<steps−1>`, `relu`, as the official module order.
    public override func members() -> [ModuleMember] {
        [.child(name: "preprocess", module: preprocess)]
            + operations.enumerated().map { .child(name: "_ops.\($0.offset)", module: $0.element) }
            + [.child(name: "relu", module: relu)]
    }

    /// - Parameters:
    ///   - s0: `[N, C, H, W]`.
    ///   - weights: `[N, steps, numOps]`; step i uses `weights[:, i, :]`.
    /// - Returns: `[N, C, H, W]`.
    public func callAsFunction(_ s0: Tensor, weights: Tensor) -> Tensor {
        let n = s0.shape[0], numOps = DRSformerOperation.allCases.count
        precondition(weights.shape == [n, operations.count, numOps],
                     "DRSformerGroupOLs: weights must be [\(n), \(operations.count), \(numOps)], got \(weights.shape)")
        var s = preprocess(s0)
        for (i, layer) in operations.enumerated() {
            let stepWeights = weights.slice(axis: 1, start: i, end: i + 1).reshaped([n, numOps])
            s = relu(layer(s, weights: stepWeights) + s)
        }
        return s
    }

    /// MACs on an `H×W` map.
    public func multiplyAccumulates(height: Int, width: Int) -> Int {
        operations.reduce((preprocess.op[0] as! Conv2d).multiplyAccumulates(height: height, width: width)) {
            $0 + $1.multiplyAccumulates(height: height, width: width)
        }
    }
}

/// The official `OALayer`: global average pooling, then `Linear(C, 2·k·numOps)`, ReLU, `Linear(2·k·numOps, k·numOps)`,
/// viewed as `[N, k, numOps]` (the logits of the operation weights of k steps).
public final class DRSformerOALayer: Module {
    /// The official attribute names of the members renamed in Swift (the checkpoint keys).
    public override class var stateDictKeys: [String: String] {
        ["channelAttention": "ca_fc"]
    }

    /// Steps k.
    public let k: Int
    /// Operations per step.
    public let operationCount: Int
    /// `[Linear, ReLU, Linear]`.
    public var channelAttention: [UnaryLayer]

    /// - Parameters: channel: input channels C; k: steps; operationCount: operations per step.
    public init(channel: Int, k: Int, operationCount: Int) {
        self.k = k
        self.operationCount = operationCount
        channelAttention = [Linear(channel, k * operationCount * 2), ReLU(), Linear(k * operationCount * 2, k * operationCount)]
        super.init()
    }

    /// - Parameter x: `[N, C, H, W]`. - Returns: `[N, k, num_ops]` logits.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let n = x.shape[0]
        let pooled = x.adaptiveAvgPool1x1().reshaped([n, x.shape[1]])
        return applySequence(channelAttention, to: pooled).reshaped([n, k, operationCount])
    }

    /// MACs of the two linear layers on the pooled `H×W` map: independent of the size (pooling is not counted).
    public func multiplyAccumulates(height: Int, width: Int) -> Int {
        (channelAttention[0] as! Linear).weight.count + (channelAttention[2] as! Linear).weight.count
    }
}

// MARK: - MEFC

/// The official `subnet` (MEFC): `layer_num` pairs of an `OALayer` (which computes softmaxed operation weights from
/// the current features) and a `GroupOLs` (which applies them). DRSformer uses the defaults `layer_num = 1`, `steps = 4`.
public final class DRSformerSubnet: Module, UnaryLayer {
    /// `[OALayer, GroupOLs, OALayer, GroupOLs, ...]` (keys `layers.0.ca_fc...`, `layers.1._ops...`).
    public var layers: [Module]

    /// - Parameters: dim: channels; layerCount: attention/group pairs; steps: operation layers per group.
    public init(dim: Int, layerCount: Int = 1, steps: Int = 4) {
        let numOps = DRSformerOperation.allCases.count
        layers = (0..<layerCount).flatMap { _ -> [Module] in
            [DRSformerOALayer(channel: dim, k: steps, operationCount: numOps), DRSformerGroupOLs(steps: steps, channels: dim)]
        }
        super.init()
    }

    /// - Parameter x: `[N, dim, H, W]`. - Returns: `[N, dim, H, W]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        var x = x
        var weights: Tensor? = nil
        for layer in layers {
            if let attention = layer as? DRSformerOALayer {
                weights = attention(x).softmax()
            } else if let group = layer as? DRSformerGroupOLs {
                guard let w = weights else { preconditionFailure("DRSformerSubnet: a GroupOLs came before any OALayer") }
                x = group(x, weights: w)
            }
        }
        return x
    }

    /// MACs on an `H×W` map: every convolution and linear layer.
    public func multiplyAccumulates(height: Int, width: Int) -> Int {
        layers.reduce(0) { total, layer in
            if let a = layer as? DRSformerOALayer { return total + a.multiplyAccumulates(height: height, width: width) }
            if let g = layer as? DRSformerGroupOLs { return total + g.multiplyAccumulates(height: height, width: width) }
            return total
        }
    }
}
