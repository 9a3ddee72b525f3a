// Parameter initialisation with PyTorch's default distributions from one seedable generator.
//
// Every layer draws its initial values from `ParameterInit.generator` in construction order, so
// `ParameterInit.seed(s)` followed by building a model gives the same weights on every run. (The values differ
// from PyTorch's for the same seed — the generators differ — but the distributions are the same.)

import Foundation
import SKDTensor

/// Initial values for parameters. Every tensor returned has `requiresGrad = true`.
public enum ParameterInit {
    /// The generator all initialisers draw from.
    ///
    /// Owner: the thread that constructs models (one at a time); seed it with `seed(_:)` before building a model
    /// for reproducible weights. Its `state` can be saved and restored like any `SKDRandom`.
    public static var generator = SKDRandom(seed: 0x5_4B44_4E4E)

    /// Restarts `generator` from `s`.
    public static func seed(_ s: UInt64) { generator = SKDRandom(seed: s) }

    /// A parameter of `shape` with values from U(−bound, bound).
    public static func uniform(_ shape: [Int], bound: Float) -> Tensor {
        precondition(bound >= 0, "ParameterInit.uniform: negative bound \(bound) for shape \(shape)")
        let t = Tensor.uniform(shape, low: -bound, high: bound, using: &generator)
        t.requiresGrad = true
        return t
    }

    /// PyTorch's `kaiming_uniform_(w, a)` with fan-in mode and leaky-ReLU gain: U(−b, b) with
    /// b = √(6 / ((1 + a²) · fanIn)). The default a = √5 is what `nn.Linear` and `nn.Conv2d` use, giving
    /// b = 1/√fanIn.
    ///
    /// - Parameters:
    ///   - shape: the weight's shape.
    ///   - fanIn: inputs feeding one output (see `fanIn(ofWeight:)`); 0 gives all zeros.
    public static func kaimingUniform(_ shape: [Int], fanIn: Int, a: Double = 5.0.squareRoot()) -> Tensor {
        precondition(fanIn >= 0, "ParameterInit.kaimingUniform: negative fanIn \(fanIn) for shape \(shape)")
        let bound = fanIn == 0 ? 0 : (6 / ((1 + a * a) * Double(fanIn))).squareRoot()
        return uniform(shape, bound: Float(bound))
    }

    /// The bound PyTorch's `nn.Linear`/`nn.Conv2d` use for their bias: 1/√fanIn (0 when fanIn is 0).
    public static func defaultBiasBound(fanIn: Int) -> Float {
        fanIn > 0 ? Float(1 / Double(fanIn).squareRoot()) : 0
    }

    /// PyTorch's fan-in of a weight: `shape[1] × (product of shape[2...])`.
    ///
    /// For `Linear` `[out, in]` that is `in`; for `Conv2d` `[out, in/groups, kh, kw]` it is `in/groups·kh·kw`;
    /// for `ConvTranspose2d` `[in, out/groups, kh, kw]` it is `out/groups·kh·kw` (PyTorch's convention, kept so
    /// that the distributions match).
    public static func fanIn(ofWeight shape: [Int]) -> Int {
        precondition(shape.count >= 2, "ParameterInit.fanIn: weight shape \(shape) has fewer than 2 axes")
        return shape.dropFirst().reduce(1, *)
    }

    /// A parameter of `shape` filled with zeros (e.g. a LayerNorm bias).
    public static func zeros(_ shape: [Int]) -> Tensor { constant(shape, 0) }

    /// A parameter of `shape` filled with ones (e.g. a LayerNorm weight or an attention temperature).
    public static func ones(_ shape: [Int]) -> Tensor { constant(shape, 1) }

    /// A parameter of `shape` filled with `value`.
    public static func constant(_ shape: [Int], _ value: Float) -> Tensor {
        let t = Tensor(shape: shape, repeating: value)
        t.requiresGrad = true
        return t
    }
}
