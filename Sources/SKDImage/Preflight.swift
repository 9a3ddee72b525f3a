// The pre-flight pass: every image of a dataset decoded once, in parallel, before a run starts, so a file that
// only looks valid (a good header over truncated data) is reported up front with every other unreadable file,
// instead of killing the run at the first batch or validation that reads it.

import Dispatch
import Foundation
import SKDTensor

/// Decodes every image file of a dataset once.
public enum Preflight {
    /// An image that failed to decode, and why.
    public struct Failure: Sendable, Equatable {
        /// The file.
        public var file: URL
        /// The decoder's one-line reason (the `ImageError` description).
        public var reason: String
    }

    /// The files a dataset reads: both images of every pair (`PairedDataset`), every image (`CleanDataset`).
    /// `nil` for other sources, whose pairs `decodeAll` reads through the source itself.
    public static func files(of source: any PairedImageSource) -> [URL]? {
        if let paired = source as? PairedDataset { return paired.entries.flatMap { [$0.input, $0.target] } }
        if let clean = source as? CleanDataset { return clean.files }
        return nil
    }

    /// Decodes every image of `source` on all cores, calling `progress(done, total)` from time to time (about
    /// once a second, and at the end).
    ///
    /// - Returns: every file that failed, in dataset order (empty when all decode).
    public static func decodeAll(_ source: any PairedImageSource, progress: (@Sendable (Int, Int) -> Void)? = nil) -> [Failure] {
        let files = self.files(of: source)
        let total = files?.count ?? source.count
        guard total > 0 else { return [] }
        final class State: @unchecked Sendable {
            let lock = NSLock()
            var failures: [Int: Failure] = [:]
            var done = 0
            var lastReport = DispatchTime.now()
        }
        let state = State()
        let workers = max(1, min(ProcessInfo.processInfo.activeProcessorCount, total))
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var index = worker
            while index < total {
                var failure: Failure? = nil
                if let files {
                    do { _ = try Image(contentsOf: files[index]) } catch {
                        failure = Failure(file: files[index], reason: "\(error)")
                    }
                } else {
                    var rng = SKDRandom(seed: UInt64(index))
                    do { _ = try source.pair(at: index, using: &rng) } catch {
                        failure = Failure(file: URL(fileURLWithPath: source.name(at: index)), reason: "\(error)")
                    }
                }
                state.lock.lock()
                if let failure { state.failures[index] = failure }
                state.done += 1
                let now = DispatchTime.now()
                let report = state.done == total || now.uptimeNanoseconds - state.lastReport.uptimeNanoseconds > 1_000_000_000
                if report { state.lastReport = now }
                let done = state.done
                state.lock.unlock()
                if report { progress?(done, total) }
                index += workers
            }
        }
        return state.failures.keys.sorted().map { state.failures[$0]! }
    }
}
