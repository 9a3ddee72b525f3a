// The processes of one `skd train`/`skd distill` run: this process alone, or the ranks of an MPI job
// (`mpirun -np K skd distill ...`, Docs/distributed.md). Under MPI the ranks check their inputs together, so a
// mistake gives one line (from the lowest rank that found it) and no rank starts work another refused; rank 0
// alone prints and writes; a failure of one rank during training ends the whole job instead of leaving the
// others waiting in a collective.

import ArgumentParser
import Foundation
import SKDDistributed
import SwiftSKD

/// This process alone, or the ranks of an MPI job, as one training run sees them.
final class RunSession {
    /// The MPI world when the process was started by an MPI launcher, else `nil`.
    let mpi: MPICommunicator?
    private let single = SingleProcessCommunicator()

    /// The ranks' communicator (a lone process's when not under MPI).
    var communicator: any GradientCommunicator { mpi ?? single }
    /// This process's rank.
    var rank: Int { communicator.rank }
    /// The number of ranks.
    var size: Int { communicator.size }
    /// Rank 0: the one that prints and writes.
    var isWriter: Bool { rank == 0 }

    /// The environment variable read when `--threads` is not given.
    static let threadsVariable = "SKD_THREADS"

    private init(mpi: MPICommunicator?) { self.mpi = mpi }

    /// A lone process that never touches MPI (for `skd demo`).
    static let single = RunSession(mpi: nil)

    /// This process's session: MPI is initialised only when an MPI launcher started it.
    static func start() throws -> RunSession {
        guard MPICommunicator.isLaunchedByMPI else { return RunSession(mpi: nil) }
        switch MPICommunicator.initialize() {
        case .success(let world): return RunSession(mpi: world)
        case .failure(let error): throw failure("MPI could not start: \(error)", status: 1)
        }
    }

    /// Ends MPI (every rank must get here; the ranks wait for each other).
    func finish() {
        fflush(stdout)
        mpi?.finalize()
    }

    /// Runs a step each rank does on its own that may fail on user input, then lets the ranks agree: when any rank
    /// failed, the lowest failing rank throws its error (one line) and the others exit quietly with status 2.
    func collective<T>(_ step: () throws -> T) throws -> T {
        guard let mpi, mpi.size > 1 else { return try step() }
        let result = Result { try step() }
        var failed = [Float](repeating: 0, count: mpi.size)
        if case .failure = result { failed[mpi.rank] = 1 }
        failed.withUnsafeMutableBufferPointer { mpi.allReduceSum($0) }
        guard let first = failed.firstIndex(where: { $0 > 0 }) else { return try result.get() }
        guard first == mpi.rank else { throw ExitCode(ExitStatus.badInput) }
        // Rank 0's failures are everyone's as a rule (same options); another rank's names itself (its node's files).
        do { return try result.get() } catch let error as ExitCode { throw error } catch {
            guard mpi.rank != 0 else { throw error }
            throw RunConfigurationError("rank \(mpi.rank) of \(mpi.size): \(error)")
        }
    }

    /// Fails (collectively) when `text` on some rank differs from rank 0's; `describe(mine, rank0s)` words it.
    func requireSame(_ text: String, describe: (String, String) -> String) throws {
        guard let mpi, mpi.size > 1 else { return }
        let reference = String(decoding: mpi.broadcast(bytes: Array(text.utf8), root: 0), as: UTF8.self)
        try collective {
            if reference != text { throw RunConfigurationError(describe(text, reference)) }
        }
    }

    /// Sets the OpenBLAS and kernel threads of this process: `--threads`, else `$SKD_THREADS`, else under MPI the
    /// cores this rank may use (its CPU affinity, at most the node's cores over its ranks); a lone process keeps
    /// the defaults (every core).
    func applyThreads(_ flag: Int?) throws {
        var threads = flag
        if let flag, flag < 1 { throw RunConfigurationError("--threads must be at least 1, got \(flag)") }
        if threads == nil, let text = ProcessInfo.processInfo.environment[RunSession.threadsVariable] {
            guard let value = Int(text.trimmingCharacters(in: .whitespaces)), value >= 1 else {
                throw RunConfigurationError("\(RunSession.threadsVariable)='\(text)' is not a positive number of threads")
            }
            threads = value
        }
        if threads == nil, let mpi {
            let share = max(1, ProcessInfo.processInfo.activeProcessorCount / mpi.localSize)
            threads = min(share, RunSession.allowedCPUs() ?? share)
        }
        if let threads {
            BLAS.threads = threads
            Parallel.threads = threads
        }
    }

    /// The CPUs this process may run on (`Cpus_allowed_list` of /proc/self/status), `nil` when unknown.
    static func allowedCPUs() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") }) else { return nil }
        var count = 0
        for part in line.dropFirst("Cpus_allowed_list:".count).trimmingCharacters(in: .whitespaces).split(separator: ",") {
            let ends = part.split(separator: "-").compactMap { Int($0) }
            if ends.count == 2 { count += ends[1] - ends[0] + 1 } else if ends.count == 1 { count += 1 }
        }
        return count > 0 ? count : nil
    }

    /// The checks of a run's layout over the ranks, before any work: K divides the global batch, and every rank
    /// resolved the same options.
    func checkLayout(_ configuration: RunConfiguration) throws {
        guard size > 1 else { return }
        let batch = configuration.training.batchSize
        try collective {
            if batch % size != 0 {
                throw RunConfigurationError("datasets.train.batch_size \(batch) is not divisible by the \(size) MPI ranks (the batch size is the global batch, split evenly over the ranks)")
            }
            if case .seconds? = configuration.training.budget {
                throw RunConfigurationError("train.budget \(configuration.training.budget!.description) is a wall-clock budget, which the \(size) MPI ranks' clocks cannot share; give an image budget (e.g. 50000img)")
            }
        }
        try requireSame(configuration.jsonString()) { mine, reference in
            "its options differ from rank 0's (\(RunSession.firstDifference(mine, reference))); every rank must run the same command"
        }
        if let mpi, isWriter {
            printError("MPI: \(mpi.size) ranks (\(mpi.localSize) on this node), \(Parallel.threads) threads each; global batch \(batch) = \(mpi.size) × \(batch / mpi.size)")
        }
    }

    /// The first key path at which two JSON objects differ, with both values.
    static func firstDifference(_ a: String, _ b: String) -> String {
        func flatten(_ value: Any, _ path: String, into out: inout [String: String]) {
            if let object = value as? [String: Any] {
                for (k, v) in object { flatten(v, path.isEmpty ? k : path + "." + k, into: &out) }
            } else {
                out[path] = "\(value)"
            }
        }
        var fa: [String: String] = [:], fb: [String: String] = [:]
        if let x = try? JSONSerialization.jsonObject(with: Data(a.utf8)) { flatten(x, "", into: &fa) }
        if let y = try? JSONSerialization.jsonObject(with: Data(b.utf8)) { flatten(y, "", into: &fb) }
        for key in Set(fa.keys).union(fb.keys).sorted() where fa[key] != fb[key] {
            return "\(key): \(fa[key] ?? "unset") here, \(fb[key] ?? "unset") on rank 0"
        }
        return "their texts differ"
    }

    /// Connects a trainer to the ranks; only rank 0 reports.
    func attach(_ trainer: Trainer) {
        trainer.communicator = communicator
        if !isWriter { trainer.report = { _ in } }
    }

    /// Runs work done once the ranks have committed to the run (rank 0's first writes, the training loop). Under
    /// MPI, the ranks agree on every `TrainingError` (an interruption or a non-finite loss), which rank 0 alone
    /// reports; any other error is one rank's and ends the whole job.
    func training<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as TrainingError {
            guard isWriter else {
                switch error {
                case .interrupted: throw ExitCode(ExitStatus.interrupted)
                case .nonFinite: throw ExitCode(ExitStatus.nonFinite)
                }
            }
            throw error
        } catch {
            guard let mpi, mpi.size > 1 else { throw error }
            mpi.abort(String(describing: error).split(whereSeparator: \.isNewline).joined(separator: " "))
        }
    }
}
