// Data-parallel training without a dependency on any transport: the Trainer talks to a `GradientCommunicator`
// (one process by default; `SKDDistributed.MPICommunicator` under mpirun), and `DataParallelSync` does the rest.
//
// What makes K ranks compute what one process computes (Docs/distributed.md):
//   - every rank starts from rank 0's parameters (broadcast);
//   - rank r trains on samples r·B/K ..< (r+1)·B/K of each global batch (the sampler's `shard`), B the global batch;
//   - every loss term is a mean over the samples of the batch, so the global loss is the mean of the K shard
//     losses and its gradient the mean of the K shard gradients: one all-reduce (sum) of a flat buffer, × 1/K;
//   - the one batch-level quantity, the contrastive negatives φ(I_q) of every degraded input of the batch, is
//     gathered from all ranks (`DistillationObjective.gatherNegatives`), so each sample sees the global batch's;
//   - the same reduced gradient and the same Adam step on every rank keep the parameters identical.

import Dispatch
import Foundation
import SKDTensor

/// What data-parallel training needs from a transport (MPI, or nothing for one process).
///
/// Every call is collective: all ranks make the same calls in the same order with buffers of the same sizes.
public protocol GradientCommunicator: AnyObject {
    /// This process's index, `0 ..< size`; rank 0 alone writes files.
    var rank: Int { get }
    /// The number of processes.
    var size: Int { get }
    /// Replaces `buffer` on every rank by the element-wise sum of all ranks' buffers.
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>)
    /// Replaces `buffer` on every rank by `root`'s.
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int)
    /// Concatenates every rank's `send` (all of one length) in rank order into `receive` (`size` × that length).
    func allGather(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>)
}

/// The communicator of a lone process: rank 0 of 1; reductions and broadcasts leave buffers as they are.
public final class SingleProcessCommunicator: GradientCommunicator {
    /// Always 0.
    public var rank: Int { 0 }
    /// Always 1.
    public var size: Int { 1 }
    /// A lone process.
    public init() {}
    /// The sum over one rank: `buffer` unchanged.
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) {}
    /// `buffer` unchanged.
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) {}
    /// Copies `send` into `receive`.
    public func allGather(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>) {
        precondition(receive.count == send.count, "allGather: \(receive.count) slots for \(send.count) values")
        if let s = send.baseAddress, let r = receive.baseAddress { r.update(from: s, count: send.count) }
    }
}

extension GradientCommunicator {
    /// Every rank's `tensor` (`[b, ...]`, the same shape on all ranks) stacked in rank order along axis 0: `[size·b, ...]`.
    public func allGather(_ tensor: Tensor) -> Tensor {
        let x = tensor
        var shape = x.shape
        shape[0] *= size
        let out = Tensor(uninitialized: shape)
        allGather(UnsafeBufferPointer(start: x.pointer, count: x.count), into: UnsafeMutableBufferPointer(start: out.pointer, count: out.count))
        return out
    }
}

/// The per-step synchronisation of data-parallel training: initial parameters, gradients, loss terms and the
/// stop request in one flat all-reduce.
final class DataParallelSync {
    let communicator: any GradientCommunicator
    let parameters: [Tensor]
    private var buffer: [Float] = []
    /// Values all-reduced per step (gradients, terms, the stop flag) and the seconds spent in the all-reduces so far
    /// (including any wait for a slower rank).
    private(set) var valuesPerStep = 0
    private(set) var reduceSeconds = 0.0
    private(set) var reduces = 0

    init(communicator: any GradientCommunicator, parameters: [Tensor]) {
        self.communicator = communicator
        self.parameters = parameters
    }

    /// One line on the cost of the all-reduces: bytes per step, mean time, and its share of `secondsPerStep`.
    func summary(secondsPerStep: Double) -> String? {
        guard reduces > 0 else { return nil }
        let mean = reduceSeconds / Double(reduces)
        return String(format: "all-reduce over %d ranks: %d values (%.2f MB) per step, %.1f ms per step = %.2f %% of the step",
                      communicator.size, valuesPerStep, Double(valuesPerStep * 4) / 1e6, mean * 1e3, 100 * mean / max(secondsPerStep, 1e-12))
    }

    /// Gives every rank rank 0's parameter values (one broadcast of a flat buffer).
    func broadcastParameters() {
        guard communicator.size > 1 else { return }
        var flat = [Float](repeating: 0, count: parameters.reduce(0) { $0 + $1.count })
        var offset = 0
        for p in parameters {
            flat.withUnsafeMutableBufferPointer { f in (f.baseAddress! + offset).update(from: p.pointer, count: p.count) }
            offset += p.count
        }
        flat.withUnsafeMutableBufferPointer { communicator.broadcast($0, root: 0) }
        offset = 0
        for p in parameters {
            flat.withUnsafeBufferPointer { f in p.pointer.update(from: f.baseAddress! + offset, count: p.count) }
            offset += p.count
        }
    }

    /// The number of gradient values one step all-reduces (parameters that received a gradient).
    var gradientCount: Int { parameters.reduce(0) { $0 + ($1.grad?.count ?? 0) } }

    /// Replaces each gradient by the mean over ranks and each term by its mean over ranks; returns whether any rank
    /// asked to stop. The gradients of all parameters, the terms and the stop flag travel in one buffer.
    func reduce(terms: [(name: String, value: Float)], stop: Bool) -> (terms: [(name: String, value: Float)], stop: Bool) {
        let k = communicator.size
        guard k > 1 else { return (terms, stop) }
        let grads = parameters.compactMap { $0.grad }
        let total = grads.reduce(0) { $0 + $1.count } + terms.count + 1
        if buffer.count != total { buffer = [Float](repeating: 0, count: total) }
        var reducedTerms = terms
        var stopAny = false
        buffer.withUnsafeMutableBufferPointer { b in
            let base = b.baseAddress!
            var offset = 0
            for g in grads {
                (base + offset).update(from: g.pointer, count: g.count)
                offset += g.count
            }
            for (i, term) in terms.enumerated() { base[offset + i] = term.value }
            base[offset + terms.count] = stop ? 1 : 0
            let began = DispatchTime.now()
            communicator.allReduceSum(b)
            reduceSeconds += Double(DispatchTime.now().uptimeNanoseconds - began.uptimeNanoseconds) / 1e9
            reduces += 1
            valuesPerStep = total
            let scale = 1 / Float(k)
            offset = 0
            for g in grads {
                let gp = g.pointer
                for i in 0..<g.count { gp[i] = base[offset + i] * scale }
                offset += g.count
            }
            for i in terms.indices { reducedTerms[i].value = base[offset + i] * scale }
            stopAny = base[offset + terms.count] > 0
        }
        return (reducedTerms, stopAny)
    }
}
