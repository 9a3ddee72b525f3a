// Adam with the exact update of torch.optim.Adam (amsgrad off, maximize off), so that a training run can be
// compared step by step with PyTorch.

import Foundation
import SKDTensor

/// Why `Adam.loadState` refused a state. Nothing has been changed when it is thrown.
public enum OptimizerError: Error, LocalizedError, CustomStringConvertible {
    /// The state tensors do not fit this optimizer's parameters; `reason` names the key and the problem.
    case invalidState(reason: String)

    /// The message, naming the offending keys and shapes.
    public var description: String {
        switch self {
        case let .invalidState(reason): return "Adam.loadState: \(reason)"
        }
    }

    /// The same text as `description`, for `localizedDescription`.
    public var errorDescription: String? { description }
}

/// The Adam optimizer (Kingma & Ba), with PyTorch's semantics.
///
/// For each parameter with a gradient g at its t-th update:
/// ```
/// g ← g + weightDecay·p                       (L2 penalty in the gradient, as torch.optim.Adam; not AdamW)
/// m ← β₁·m + (1−β₁)·g,   v ← β₂·v + (1−β₂)·g²
/// p ← p − lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + eps)
/// ```
/// Parameters without a gradient are skipped and their t does not advance (each parameter counts its own
/// updates, as in PyTorch); their moment buffers are created at their first update.
public final class Adam {
    /// The parameters being optimised, in the order that numbers their state.
    public let parameters: [Tensor]
    /// The learning rate; set it each step from a schedule.
    public var lr: Float
    /// The decay rates (β₁, β₂) of the first and second moment estimates.
    public var betas: (Float, Float)
    /// Added to the denominator for numerical stability.
    public var eps: Float
    /// The L2 penalty coefficient added to the gradient.
    public var weightDecay: Float
    /// The number of `step()` calls so far (restored by `loadState`).
    public private(set) var stepCount = 0

    /// First moments, shaped like the parameters; `nil` before a parameter's first update.
    private var expAvg: [Tensor?]
    /// Second moments, shaped like the parameters; `nil` before a parameter's first update.
    private var expAvgSq: [Tensor?]
    /// Per-parameter update counts (the t in the bias corrections).
    private var steps: [Int]

    /// An optimizer for `parameters` (each tensor once; usually `model.trainableParameters()`).
    public init(parameters: [Tensor], lr: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999),
                eps: Float = 1e-8, weightDecay: Float = 0) {
        precondition(lr >= 0, "Adam: negative learning rate \(lr)")
        precondition((0..<1).contains(betas.0) && (0..<1).contains(betas.1), "Adam: betas \(betas) must lie in [0, 1)")
        precondition(eps >= 0, "Adam: negative eps \(eps)")
        precondition(weightDecay >= 0, "Adam: negative weight decay \(weightDecay)")
        precondition(Set(parameters.map(ObjectIdentifier.init)).count == parameters.count,
                     "Adam: a parameter appears more than once in the list")
        self.parameters = parameters
        self.lr = lr
        self.betas = betas
        self.eps = eps
        self.weightDecay = weightDecay
        expAvg = Array(repeating: nil, count: parameters.count)
        expAvgSq = Array(repeating: nil, count: parameters.count)
        steps = Array(repeating: 0, count: parameters.count)
    }

    /// Updates every parameter that has a gradient, in place (outside of autodiff).
    public func step() {
        stepCount += 1
        // PyTorch's hyper-parameters are Python doubles: 1 − β and βᵗ are formed in double and only then rounded
        // to float32. Widening β through its shortest decimal form ("0.999") reproduces that; widening the Float
        // directly would make 1 − β₂ off by 1.3e-5 relative.
        let beta1 = Double("\(betas.0)") ?? Double(betas.0)
        let beta2 = Double("\(betas.1)") ?? Double(betas.1)
        let oneMinusBeta1 = Float(1 - beta1), oneMinusBeta2 = Float(1 - beta2), beta2Float = Float(beta2)
        for (index, parameter) in parameters.enumerated() {
            guard let grad = parameter.grad else { continue }
            precondition(grad.count == parameter.count,
                         "Adam.step: gradient \(grad.shape) does not match parameter \(index) \(parameter.shape)")
            let m = expAvg[index] ?? Tensor(zeros: parameter.shape)
            let v = expAvgSq[index] ?? Tensor(zeros: parameter.shape)
            expAvg[index] = m
            expAvgSq[index] = v
            steps[index] += 1
            let t = Double(steps[index])
            let biasCorrection1 = 1 - Foundation.pow(beta1, t)
            let biasCorrection2Sqrt = (1 - Foundation.pow(beta2, t)).squareRoot()
            let stepSize = Float(Double(lr) / biasCorrection1)
            let correction2 = Float(biasCorrection2Sqrt)
            let decay = weightDecay, eps = self.eps
            let p = parameter.pointer, g = grad.pointer, mp = m.pointer, vp = v.pointer
            // gᵢ = g + decay·p;  m += (1−β₁)(gᵢ − m);  v = β₂·v + (1−β₂)·gᵢ²;  p −= stepSize·m / (√v/correction2 + eps),
            // in the C kernel (AVX2 / AVX-512 where available; no FMA contraction, the same bits at every level).
            Parallel.forEach(parameter.count, cost: 8) { range in
                let i = range.lowerBound
                VectorRows.adamUpdate(parameters: p + i, gradients: g + i, firstMoments: mp + i, secondMoments: vp + i,
                                      count: range.count, weightDecay: decay, oneMinusBeta1: oneMinusBeta1,
                                      beta2: beta2Float, oneMinusBeta2: oneMinusBeta2, stepSize: stepSize,
                                      correction2: correction2, eps: eps)
            }
        }
    }

    /// Forgets the gradients of all parameters (PyTorch's `zero_grad(set_to_none=True)`).
    public func zeroGrad() {
        for parameter in parameters { parameter.zeroGrad() }
    }

    /// The optimizer state for a checkpoint: for every parameter index i updated at least once,
    /// `exp_avg.<i>` and `exp_avg_sq.<i>` (shaped like parameter i) and `step.<i>` (shape `[]`); plus
    /// `step_count` (shape `[]`). Counts are stored as float32, exact up to 2²⁴ steps. The tensors are copies.
    public func stateTensors() -> [String: Tensor] {
        var state: [String: Tensor] = ["step_count": Tensor(Float(stepCount))]
        for index in parameters.indices {
            guard let m = expAvg[index], let v = expAvgSq[index] else { continue }
            state["exp_avg.\(index)"] = m.copy()
            state["exp_avg_sq.\(index)"] = v.copy()
            state["step.\(index)"] = Tensor(Float(steps[index]))
        }
        return state
    }

    /// Restores a state produced by `stateTensors()` of an optimizer over parameters of the same shapes, in the
    /// same order. Parameters absent from `state` start afresh. Hyper-parameters (`lr`, …) are not part of it.
    ///
    /// - Throws: `OptimizerError.invalidState` for unknown keys, an index out of range, a parameter with only
    ///   part of its state, a shape mismatch or a count that is not a non-negative integer.
    public func loadState(_ state: [String: Tensor]) throws {
        func fail(_ reason: String) -> OptimizerError { .invalidState(reason: reason) }
        func count(_ key: String, _ tensor: Tensor) throws -> Int {
            guard tensor.count == 1, tensor.pointer[0] >= 0, tensor.pointer[0] == tensor.pointer[0].rounded(),
                  tensor.pointer[0] <= 16_777_216
            else { throw fail("'\(key)' must be one non-negative integer, got \(tensor)") }
            return Int(tensor.pointer[0])
        }

        var newAvg = [Tensor?](repeating: nil, count: parameters.count)
        var newAvgSq = [Tensor?](repeating: nil, count: parameters.count)
        var newSteps = [Int?](repeating: nil, count: parameters.count)
        var newStepCount = 0
        for (key, tensor) in state {
            if key == "step_count" { newStepCount = try count(key, tensor); continue }
            let parts = key.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 2, ["exp_avg", "exp_avg_sq", "step"].contains(parts[0]), let index = Int(parts[1]) else {
                throw fail("unknown key '\(key)'")
            }
            guard parameters.indices.contains(index) else {
                throw fail("'\(key)' refers to parameter \(index), but the optimizer has \(parameters.count)")
            }
            if parts[0] == "step" {
                newSteps[index] = try count(key, tensor)
                continue
            }
            guard tensor.shape == parameters[index].shape else {
                throw fail("'\(key)' has shape \(tensor.shape), parameter \(index) has \(parameters[index].shape)")
            }
            if parts[0] == "exp_avg" { newAvg[index] = tensor.copy() } else { newAvgSq[index] = tensor.copy() }
        }
        for index in parameters.indices {
            let present = [newAvg[index] != nil, newAvgSq[index] != nil, newSteps[index] != nil]
            guard present.allSatisfy({ $0 }) || !present.contains(true) else {
                throw fail("parameter \(index) needs all of exp_avg.\(index), exp_avg_sq.\(index), step.\(index); some are missing")
            }
        }
        expAvg = newAvg
        expAvgSq = newAvgSq
        steps = newSteps.map { $0 ?? 0 }
        stepCount = newStepCount
    }
}
