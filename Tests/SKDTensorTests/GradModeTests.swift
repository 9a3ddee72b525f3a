// GradMode is per thread; `checkpointed` recomputes its body inside the backward with recording switched on.

import Foundation
import SKDTensor
import SKDTestSupport
import XCTest

/// Messages appended from several threads.
private final class FailureLog: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func append(_ message: String) { lock.lock(); list.append(message); lock.unlock() }
    var messages: [String] { lock.lock(); defer { lock.unlock() }; return list }
}

final class GradModeTests: XCTestCase {
    /// Two threads, one inside `noGrad` and one recording, interleaved step by step with semaphores: each sees
    /// its own mode at every step, and only the recording thread's results have a history.
    func testTwoThreadsWithDifferentModesDoNotInterfere() {
        let rounds = 50
        let toRecorder = DispatchSemaphore(value: 0), toSilent = DispatchSemaphore(value: 0)
        let done = DispatchGroup()
        let log = FailureLog()
        let fail = { (message: String) in log.append(message) }

        done.enter()
        Thread {
            noGrad {
                let w = randomTensor([4, 4], seed: 1)
                w.requiresGrad = true
                for round in 0..<rounds {
                    // The other thread is recording right now (it waits for this signal after its own check).
                    if GradMode.isEnabled { fail("silent thread: recording on in round \(round)") }
                    if (w * 2).requiresGrad { fail("silent thread: an op recorded in round \(round)") }
                    toRecorder.signal()
                    toSilent.wait()
                }
            }
            done.leave()
        }.start()

        done.enter()
        Thread {
            let w = randomTensor([4, 4], seed: 2)
            w.requiresGrad = true
            for round in 0..<rounds {
                toRecorder.wait()
                if !GradMode.isEnabled { fail("recording thread: recording off in round \(round)") }
                let y = (w * 3).sum()
                if !y.requiresGrad { fail("recording thread: no history in round \(round)") }
                y.backward()
                // Flip the mode locally too: the other thread must not see it.
                noGrad { if (w * 2).requiresGrad { fail("recording thread: noGrad recorded in round \(round)") } }
                if !GradMode.isEnabled { fail("recording thread: noGrad did not restore the mode in round \(round)") }
                toSilent.signal()
            }
            // 3 per round, accumulated over every round.
            if abs(w.grad!.pointer[0] - Float(3 * rounds)) > 1e-3 { fail("recording thread: gradient \(w.grad!.pointer[0])") }
            done.leave()
        }.start()

        XCTAssertEqual(done.wait(timeout: .now() + 60), .success, "the two threads did not finish")
        XCTAssertEqual(log.messages, [])
        XCTAssertTrue(GradMode.isEnabled, "the test thread's own mode changed")
    }

    /// A new thread starts with recording on, even when the thread that created it is inside `noGrad`.
    func testNewThreadStartsRecording() {
        let log = FailureLog()
        let done = DispatchSemaphore(value: 0)
        noGrad {
            Thread { log.append("\(GradMode.isEnabled)"); done.signal() }.start()
            done.wait()
            XCTAssertFalse(GradMode.isEnabled)
        }
        XCTAssertEqual(log.messages, ["true"])
    }

    /// `Parallel.forEach` runs its chunks in the caller's mode, on whichever threads it uses.
    func testParallelChunksSeeTheCallersMode() {
        for recording in [true, false] {
            let modes = UnsafeMutablePointer<Bool>.allocate(capacity: 64)
            defer { modes.deallocate() }
            let run = { Parallel.forEach(64, cost: 1 << 20) { range in for i in range { modes[i] = GradMode.isEnabled } } }
            if recording { withGrad(run) } else { noGrad(run) }
            XCTAssertTrue((0..<64).allSatisfy { modes[$0] == recording }, "recording \(recording)")
        }
    }

    /// `withGrad` switches recording on inside `noGrad` and restores the outer mode.
    func testWithGradInsideNoGrad() {
        let w = randomTensor([3], seed: 3)
        w.requiresGrad = true
        noGrad {
            XCTAssertFalse((w * 2).requiresGrad)
            XCTAssertTrue(withGrad { (w * 2).requiresGrad })
            XCTAssertFalse(GradMode.isEnabled)
        }
    }

    /// The per-thread flag costs about nothing: a read is a thread-local load (measured here against a
    /// 1024-element multiply, the smallest op of a model). Printed, and bounded loosely (the machine is shared).
    func testReadingTheModeIsCheap() {
        let reads = 10_000_000
        var count = 0
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<reads where GradMode.isEnabled { count += 1 }
        let perRead = Double(DispatchTime.now().uptimeNanoseconds - start) / Double(reads)
        XCTAssertEqual(count, reads)
        let x = randomTensor([1024], seed: 4)
        let opStart = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<1000 { _ = noGrad { x * 2 } }
        let perOp = Double(DispatchTime.now().uptimeNanoseconds - opStart) / 1000
        print("GradMode.isEnabled: \(String(format: "%.2f", perRead)) ns per read; a 1024-element multiply: \(String(format: "%.0f", perOp)) ns")
        XCTAssertLessThan(perRead, 20, "a GradMode read should be a thread-local load")
    }
}

final class CheckpointTests: XCTestCase {
    /// A two-input body with a parameter: `checkpointed` gives the same value and the same gradients (inputs and
    /// parameter) as the plain graph, and passes a finite-difference check.
    func testCheckpointMatchesThePlainGraph() {
        let weight = randomTensor([5, 4], seed: 10)
        weight.requiresGrad = true
        let body = { (t: [Tensor]) -> Tensor in (Tensor.matmul(t[0], weight).tanh() * t[1]).exp() }
        let a = randomTensor([3, 5], seed: 11), b = randomTensor([3, 4], seed: 12)
        let probe = randomTensor([3, 4], seed: 13)
        var values: [Tensor] = [], grads: [[Tensor]] = []
        for useCheckpoint in [false, true] {
            for x in [a, b, weight] { x.requiresGrad = true; x.zeroGrad() }
            let y = useCheckpoint ? checkpointed("test", [a, b], body) : body([a, b])
            values.append(y.detached())
            (y * probe).sum().backward()
            grads.append([a.grad!, b.grad!, weight.grad!])
        }
        XCTAssertLessThan(relativeError(values[1], values[0]), 1e-6)
        for (g1, g0) in zip(grads[1], grads[0]) { XCTAssertLessThan(relativeError(g1, g0), 1e-5) }
        weight.requiresGrad = false
        checkGradients("checkpointed", inputs: [a, b]) { checkpointed("test", $0, body) }
    }

    /// Batch chunks (5 samples in slices of 2, the last one short): the same value and gradients as the plain
    /// graph, inputs and parameter.
    func testBatchChunkedCheckpointMatchesThePlainGraph() {
        let weight = randomTensor([5, 4], seed: 14)
        weight.requiresGrad = true
        let body = { (t: [Tensor]) -> Tensor in (Tensor.matmul(t[0], weight).tanh() * t[1]).exp() }
        let a = randomTensor([5, 5], seed: 15), b = randomTensor([5, 4], seed: 16)
        let probe = randomTensor([5, 4], seed: 17)
        var values: [Tensor] = [], grads: [[Tensor]] = []
        for chunk in [nil, 2, 1] as [Int?] {
            for x in [a, b, weight] { x.requiresGrad = true; x.zeroGrad() }
            let y = chunk.map { checkpointed("chunked", [a, b], batchChunk: $0, body) } ?? body([a, b])
            values.append(y.detached())
            (y * probe).sum().backward()
            grads.append([a.grad!, b.grad!, weight.grad!])
        }
        for k in 1..<3 {
            XCTAssertLessThan(relativeError(values[k], values[0]), 1e-6)
            for (g, g0) in zip(grads[k], grads[0]) { XCTAssertLessThan(relativeError(g, g0), 1e-5) }
        }
    }

    /// A chain of checkpoints (each one recomputed inside the outer backward, which runs without recording),
    /// one of them returning its input unchanged.
    func testChainedCheckpoints() {
        let x = randomTensor([2, 6], seed: 20)
        checkGradients("checkpoint chain", inputs: [x]) { inputs in
            var h = inputs[0]
            h = checkpointed("c1", [h]) { $0[0].square() + $0[0] }
            h = checkpointed("identity", [h]) { $0[0] }
            h = checkpointed("c2", [h]) { ($0[0] * 0.5).tanh() }
            return h
        }
    }

    /// Without recording (or with no input requiring a gradient) nothing is recorded.
    func testNoNodeWithoutRecording() {
        let x = randomTensor([4], seed: 30)
        XCTAssertFalse(checkpointed("c", [x]) { $0[0] * 2 }.requiresGrad)
        x.requiresGrad = true
        XCTAssertFalse(noGrad { checkpointed("c", [x]) { $0[0] * 2 } }.requiresGrad)
        XCTAssertTrue(checkpointed("c", [x]) { $0[0] * 2 }.requiresGrad)
    }
}
