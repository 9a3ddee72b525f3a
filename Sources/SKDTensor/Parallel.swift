// Fan-out of non-BLAS kernels over the machine's cores.
//
// OpenBLAS keeps its own thread pool for GEMM; our kernels use Dispatch. The two never nest: kernels do
// not call BLAS inside `parallelFor`, and a `parallelFor` reached from inside another runs inline.

import Dispatch
import Foundation

/// Work splitting for the element-wise, normalisation, attention and convolution helper kernels.
package enum Parallel {
    /// How many chunks a large loop is split into. Defaults to the number of active cores.
    package static var threads: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Below this many units of work (≈ elements touched) a loop runs on the calling thread:
    /// waking a second core costs a few microseconds.
    package static var minimumWork = 32_768

    private static let nestingKey = "SKDParallel.inside"

    /// Calls `body` on disjoint sub-ranges that together cover `0..<count`, concurrently when the loop is
    /// large enough.
    ///
    /// - Parameters:
    ///   - count: the number of iterations.
    ///   - cost: the approximate work of one iteration (elements touched), used to decide whether to split.
    ///   - body: processes one contiguous sub-range; must only write memory no other sub-range writes.
    package static func forEach(_ count: Int, cost: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let chunks = min(threads, count)
        if chunks <= 1 || count * max(cost, 1) < minimumWork || Thread.current.threadDictionary[nestingKey] != nil {
            body(0..<count)
            return
        }
        // GradMode is per thread: the chunks run in the caller's mode (a fan-out never records, but buffer
        // accounting and any op a chunk calls must see what the caller sees).
        let recording = GradMode.isEnabled
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                let start = count * chunk / chunks, end = count * (chunk + 1) / chunks
                let dictionary = Thread.current.threadDictionary
                dictionary[nestingKey] = true
                let workerMode = GradMode.isEnabled
                GradMode.isEnabled = recording
                defer {
                    GradMode.isEnabled = workerMode
                    dictionary.removeObject(forKey: nestingKey)
                }
                body(start..<end)
            }
        }
    }
}
