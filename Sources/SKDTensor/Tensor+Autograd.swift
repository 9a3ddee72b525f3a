// Reverse-mode autodiff on a tape of closures.
//
// An op computes its output, then calls `output.recorded(name, inputs) { gradOutput in ... }`. The call
// attaches a `GradNode` only when recording is on and some input requires a gradient; otherwise the
// closure (and what it captured) is dropped at once, which is what keeps a no-grad forward pass lean.
// The closure returns one gradient per input, shaped like that input, or `nil` for inputs that do not
// require one (closures check `input.requiresGrad` before spending work on it).
// It captures only what the backward needs — the llm.c rule: cache only what backward reads.

import Foundation

/// One recorded op: its inputs and the function from the output's gradient to the inputs' gradients.
final class GradNode {
    let name: String
    let inputs: [Tensor]
    let backward: (Tensor) -> [Tensor?]

    init(name: String, inputs: [Tensor], backward: @escaping (Tensor) -> [Tensor?]) {
        self.name = name
        self.inputs = inputs
        self.backward = backward
    }
}

/// Whether ops record backward nodes.
///
/// Owner: the thread that builds graphs (SwiftSKD builds graphs from one thread at a time; kernels fan out
/// internally but never record). Toggle it with `noGrad(_:)` rather than directly.
public enum GradMode {
    /// `true` unless inside `noGrad(_:)`.
    public internal(set) static var isEnabled = true
}

/// Runs `body` without recording: results have no history and intermediates are freed as soon as they
/// are dead. Use it for teacher forward passes, inference and evaluation.
@discardableResult
public func noGrad<T>(_ body: () throws -> T) rethrows -> T {
    let previous = GradMode.isEnabled
    GradMode.isEnabled = false
    defer { GradMode.isEnabled = previous }
    return try body()
}

extension Tensor {
    /// Attaches `backward` as this tensor's producer when recording is on and some input requires a
    /// gradient. Returns `self` so that ops end with `return out.recorded(...)`.
    ///
    /// - Parameters:
    ///   - name: the op's name, for error messages and graph dumps.
    ///   - inputs: the differentiable inputs, in the order `backward` returns their gradients.
    ///   - backward: maps the gradient of `self` (shaped like `self`) to one gradient per input.
    @discardableResult
    public func recorded(_ name: String, _ inputs: [Tensor], backward: @escaping (Tensor) -> [Tensor?]) -> Tensor {
        guard GradMode.isEnabled, inputs.contains(where: { $0.requiresGrad }) else { return self }
        requiresGrad = true
        gradNode = GradNode(name: name, inputs: inputs, backward: backward)
        return self
    }

    /// Whether this tensor is a leaf of the graph (a parameter or an input), i.e. has no producer.
    public var isLeaf: Bool { gradNode == nil }

    /// Back-propagates from this tensor, accumulating into the `grad` of every leaf that requires one.
    ///
    /// - Parameter seed: the gradient of the final objective with respect to `self`, shaped like `self`;
    ///   may be omitted for a one-element tensor (seed 1).
    ///
    /// The graph is released as it is consumed (PyTorch's `retain_graph=False`): call `backward` once per
    /// forward pass.
    public func backward(_ seed: Tensor? = nil) {
        precondition(requiresGrad, "backward(): the tensor does not require a gradient (no parameter or input in its history requires one)")
        let seed = seed ?? {
            precondition(count == 1, "backward(): a seed gradient is needed for a non-scalar tensor of shape \(shape)")
            return Tensor(shape: shape, repeating: 1)
        }()
        precondition(seed.shape == shape, "backward(): seed shape \(seed.shape) differs from tensor shape \(shape)")

        guard gradNode != nil else {
            accumulateGrad(seed)
            return
        }
        let order = topologicalOrder()
        var pending: [ObjectIdentifier: Tensor] = [ObjectIdentifier(self): seed]
        noGrad {
            for tensor in order.reversed() {
                guard let node = tensor.gradNode else { continue }
                guard let g = pending.removeValue(forKey: ObjectIdentifier(tensor)) else { continue }
                let grads = node.backward(g)
                precondition(grads.count == node.inputs.count, "backward of \(node.name) returned \(grads.count) gradients for \(node.inputs.count) inputs")
                for (input, grad) in zip(node.inputs, grads) {
                    guard input.requiresGrad, let grad else { continue }
                    precondition(grad.count == input.count, "backward of \(node.name): gradient \(grad.shape) for input \(input.shape)")
                    if input.isLeaf {
                        input.accumulateGrad(grad)
                    } else if let existing = pending[ObjectIdentifier(input)] {
                        // A fresh sum: `existing` or `grad` may alias a tensor another node still holds.
                        pending[ObjectIdentifier(input)] = existing + grad
                    } else {
                        pending[ObjectIdentifier(input)] = grad
                    }
                }
                tensor.gradNode = nil
            }
        }
    }

    /// Nodes reachable from `self` in an order where every tensor comes after its inputs.
    /// Iterative, so that deep graphs cannot overflow the stack.
    private func topologicalOrder() -> [Tensor] {
        var order: [Tensor] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Tensor, Bool)] = [(self, false)]
        while let (tensor, expanded) = stack.popLast() {
            if expanded { order.append(tensor); continue }
            guard let node = tensor.gradNode, visited.insert(ObjectIdentifier(tensor)).inserted else { continue }
            stack.append((tensor, true))
            for input in node.inputs where input.gradNode != nil && !visited.contains(ObjectIdentifier(input)) {
                stack.append((input, false))
            }
        }
        return order
    }

    /// Adds `g` into `grad`, creating it (as a private copy) on first use.
    func accumulateGrad(_ g: Tensor) {
        if let grad {
            let d = grad.pointer, s = g.pointer
            for i in 0..<count { d[i] += s[i] }
        } else {
            let own = Tensor(uninitialized: shape)
            own.pointer.update(from: g.pointer, count: count)
            grad = own
        }
    }

    /// Forgets the accumulated gradient.
    public func zeroGrad() { grad = nil }
}
