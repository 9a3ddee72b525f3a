// Reverse-mode autodiff on a tape of closures.
//
// An op computes its output, then calls `output.recorded(name, inputs) { gradOutput in ... }`. The call
// attaches a `GradNode` only when recording is on and some input requires a gradient; otherwise the
// closure (and what it captured) is dropped at once, which is what keeps a no-grad forward pass lean.
// The closure returns one gradient per input, shaped like that input, or `nil` for inputs that do not
// require one (closures check `input.requiresGrad` before spending work on it).
// It captures only what the backward needs — the llm.c rule: cache only what backward reads.

import CSKDKernels
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

/// Whether ops record backward nodes, per thread.
///
/// Each thread has its own switch (a C11 `_Thread_local` flag in CSKDKernels, read with one thread-local load),
/// so two models can run on two threads, one recording and one not, without interfering. A new thread starts
/// with recording on. `Parallel.forEach` runs its chunks with the calling thread's mode, so a kernel's
/// fan-out sees the mode of the op that started it. Toggle it with `noGrad(_:)` / `withGrad(_:)` rather than
/// directly.
public enum GradMode {
    /// `true` on the calling thread unless inside `noGrad(_:)` there.
    public internal(set) static var isEnabled: Bool {
        get { skd_grad_mode_enabled() != 0 }
        set { skd_grad_mode_set_enabled(newValue ? 1 : 0) }
    }
}

/// Runs `body` without recording on the calling thread: results have no history and intermediates are freed as
/// soon as they are dead. Use it for teacher forward passes, inference and evaluation.
@discardableResult
public func noGrad<T>(_ body: () throws -> T) rethrows -> T {
    let previous = GradMode.isEnabled
    GradMode.isEnabled = false
    defer { GradMode.isEnabled = previous }
    return try body()
}

/// Runs `body` with recording on for the calling thread, whatever the enclosing mode: the counterpart of
/// `noGrad(_:)`, used where a graph must be built inside a backward pass (which runs without recording), as
/// `checkpointed(_:_:_:)` does.
@discardableResult
public func withGrad<T>(_ body: () throws -> T) rethrows -> T {
    let previous = GradMode.isEnabled
    GradMode.isEnabled = true
    defer { GradMode.isEnabled = previous }
    return try body()
}

/// Gradient checkpointing: `body(inputs)` computed without storing its intermediates.
///
/// The forward runs `body` under `noGrad` (so fused inference paths apply and nothing is recorded inside it);
/// one node is recorded whose backward re-runs `body` with recording on, on detached copies of `inputs`, and
/// back-propagates the incoming gradient through that fresh graph. Peak memory is then that of one `body` graph
/// at a time instead of all of them, for the price of one more forward of `body`. Gradients reach `inputs` and
/// any parameter `body` uses that requires one (accumulated into its `grad` during the outer `backward`).
///
/// `body` must be a deterministic function of `inputs` and of state that does not change before the backward
/// (dropout or batch statistics would differ in the recomputation). The recomputation may take a different
/// code path than the forward (e.g. the composed ops instead of a fused inference kernel), so the gradient is
/// that of the recorded path, evaluated at the same inputs.
///
/// - Parameters:
///   - name: the node's name, for error messages.
///   - inputs: the tensors `body` reads that gradients must reach; a node is recorded only when recording is
///     on and one of them requires a gradient.
///   - batchChunk: when set, the backward recomputes `body` on slices of at most this many samples along axis 0
///     of every input (and of the output), one slice at a time, so that only one slice's graph is alive. Only
///     valid for a `body` that treats samples independently (no batch statistics, no mixing across axis 0);
///     every input and the output must then share their first dimension.
///   - body: the function; must return a tensor computed from `inputs`.
/// - Returns: `body(inputs)`, with a single backward node.
public func checkpointed(_ name: String, _ inputs: [Tensor], batchChunk: Int? = nil,
                         _ body: @escaping ([Tensor]) -> Tensor) -> Tensor {
    let recording = GradMode.isEnabled && inputs.contains { $0.requiresGrad }
    guard recording else { return body(inputs) }
    let out = noGrad { body(inputs) }
    let batch = out.rank > 0 ? out.shape[0] : 1
    if let batchChunk {
        precondition(batchChunk >= 1, "checkpointed \(name): batchChunk must be at least 1, got \(batchChunk)")
        precondition(out.rank > 0 && inputs.allSatisfy { $0.rank > 0 && $0.shape[0] == batch },
                     "checkpointed \(name): batch chunks need inputs and output with one first dimension, got \(inputs.map(\.shape)) → \(out.shape)")
    }
    // `body` may have returned one of `inputs` (or a tensor with a history): the checkpoint's output must be a
    // fresh view so that the node below does not replace another tensor's history.
    let result = out.gradNode == nil && !inputs.contains(where: { $0 === out }) ? out : out.detached()
    let chunk = min(batchChunk ?? batch, batch)
    return result.recorded(name, inputs) { g in
        precondition(g.shape == out.shape, "checkpointed \(name): gradient \(g.shape) for output \(out.shape)")
        if chunk >= batch {
            let leaves = inputs.map { x -> Tensor in
                let leaf = x.detached()
                leaf.requiresGrad = x.requiresGrad
                return leaf
            }
            let recomputed = withGrad { body(leaves) }
            precondition(recomputed.shape == g.shape, "checkpointed \(name): recomputed \(recomputed.shape), gradient \(g.shape)")
            if recomputed.requiresGrad { recomputed.backward(g) }
            return leaves.map { $0.requiresGrad ? $0.grad : nil }
        }
        // One slice of samples at a time; each input's gradient is assembled slice by slice.
        let grads: [Tensor?] = inputs.map { $0.requiresGrad ? Tensor(zeros: $0.shape) : nil }
        for b0 in stride(from: 0, to: batch, by: chunk) {
            let b1 = min(batch, b0 + chunk)
            let leaves = inputs.map { x -> Tensor in
                let leaf = x.slice(axis: 0, start: b0, end: b1)
                leaf.requiresGrad = x.requiresGrad
                return leaf
            }
            let seed = g.slice(axis: 0, start: b0, end: b1)
            let recomputed = withGrad { body(leaves) }
            precondition(recomputed.shape == seed.shape, "checkpointed \(name): recomputed slice \(recomputed.shape), gradient slice \(seed.shape)")
            if recomputed.requiresGrad { recomputed.backward(seed) }
            for (leaf, grad) in zip(leaves, grads) {
                guard let grad, let part = leaf.grad else { continue }
                let per = leaf.count / max(b1 - b0, 1)
                (grad.pointer + b0 * per).update(from: part.pointer, count: part.count)
            }
        }
        return grads
    }
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
