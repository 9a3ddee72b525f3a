// The training loop shared by `skd train` (a model alone, L1) and `skd distill` (any method): Adam, cosine-annealed
// learning rate, seeded batches, JSONL log, periodic validation keeping the best weights, sample restorations,
// atomic checkpoints (also on SIGINT/SIGTERM), exact resume, and a stop with a clear message on a non-finite loss.

import Dispatch
import Foundation
import SKDImage
import SKDModels
import SKDNN
import SKDTensor

/// Schedule and bookkeeping of a run. Defaults are the paper's (Adam, 2e-4 → 1e-6 cosine, batch 8, 128×128).
public struct TrainingOptions: Codable, Equatable, Sendable {
    /// Optimizer steps.
    public var iterations = 1000
    /// Samples per batch.
    public var batchSize = 8
    /// Side of the square training crops.
    public var patchSize = 128
    /// The initial learning rate, annealed by a cosine to `minLearningRate` over `iterations`.
    public var learningRate: Float = 2e-4
    /// The learning rate at the end of the run (η_min).
    public var minLearningRate: Float = 1e-6
    /// Adam's L2 weight decay.
    public var weightDecay: Float = 0
    /// The run seed: batches, crops, augmentations and synthetic degradations all derive from it.
    public var seed: UInt64 = 0
    /// A JSONL line every `logEvery` steps (and at the first and last).
    public var logEvery = 10
    /// Validation every `validateEvery` steps (and at the end) when a validation set is given; 0 disables.
    public var validateEvery = 500
    /// At most this many validation images per evaluation (0: all).
    public var validationImages = 0
    /// A checkpoint every `checkpointEvery` steps (and at the end); 0: only at the end and on signals.
    public var checkpointEvery = 500
    /// Sample restorations written at each validation.
    public var samples = 2
    /// Background decoding threads of the sampler.
    public var workers = 1
    /// A wall-clock or image budget replacing `iterations` (see `TrainingBudget`); `nil`: `iterations` steps.
    public var budget: TrainingBudget? = nil

    /// The paper's schedule: 1000 iterations of batch 8 at 128×128, Adam 2e-4 → 1e-6.
    public init() {}
}

/// Why a run stopped early.
public enum TrainingError: Error, CustomStringConvertible {
    /// A loss term became NaN or infinite.
    case nonFinite(term: String, iteration: Int, lastCheckpoint: URL?)
    /// SIGINT or SIGTERM: a checkpoint was written.
    case interrupted(iteration: Int, checkpoint: URL)

    /// A one-line message for the user, naming the term or the checkpoint.
    public var description: String {
        switch self {
        case let .nonFinite(term, iteration, checkpoint):
            return "loss term '\(term)' is not finite at iteration \(iteration + 1); last good checkpoint: \(checkpoint?.path ?? "none (no checkpoint was written yet)")"
        case let .interrupted(iteration, checkpoint):
            return "interrupted after iteration \(iteration); checkpoint written to \(checkpoint.path) (continue with --resume)"
        }
    }
}

/// What a finished run reports.
public struct TrainingSummary {
    /// Completed iterations.
    public var iterations: Int
    /// The last logged loss terms.
    public var lastTerms: [String: Float]
    /// The best validation PSNR (RGB dB), when validation ran.
    public var bestPSNR: Double?
    /// The iteration of `bestPSNR`.
    public var bestIteration: Int?
    /// Training throughput, images per second (excluding validation).
    public var imagesPerSecond: Double
    /// The final checkpoint.
    public var checkpoint: URL
    /// Training seconds of the whole run, across resumes (what a wall-clock budget counts).
    public var trainingSeconds: Double = 0
}

/// Runs the optimisation of a `DistillationObjective` on a dataset.
public final class Trainer {
    /// What is optimised (student, projectors) and how the loss is computed.
    public let objective: DistillationObjective
    /// The training pairs (random crops are cut from them).
    public let training: any PairedImageSource
    /// The validation pairs, evaluated whole; `nil` disables validation.
    public let validation: (any PairedImageSource)?
    /// Schedule and bookkeeping.
    public let options: TrainingOptions
    /// Where logs, samples, checkpoints and the plot go.
    public let runDirectory: URL
    /// The resolved configuration, stored in every checkpoint.
    public let configJSON: String
    /// Lines for the user (progress, validation results); defaults to standard error.
    public var report: (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
    /// Stop (with a checkpoint, as on SIGINT) once this many iterations are complete; for tests and time-boxed runs.
    public var stopAfter: Int? = nil
    /// Data-parallel training (Docs/distributed.md): the ranks that share each global batch of `options.batchSize`
    /// (which `size` must divide). Rank 0 alone writes files and reports. Default: one process.
    public var communicator: any GradientCommunicator = SingleProcessCommunicator()

    /// A trainer writing into `runDirectory`; `configJSON` is stored in checkpoints and weight files.
    public init(objective: DistillationObjective, training: any PairedImageSource, validation: (any PairedImageSource)?,
                options: TrainingOptions, runDirectory: URL, configJSON: String) {
        self.objective = objective; self.training = training; self.validation = validation
        self.options = options; self.runDirectory = runDirectory; self.configJSON = configJSON
    }

    /// Trains, from the start or from `resume` (a checkpoint folder of the same run).
    public func run(resume: URL? = nil) throws -> TrainingSummary {
        let fm = FileManager.default
        let ranks = communicator.size, isWriter = communicator.rank == 0
        precondition(options.batchSize % ranks == 0, "Trainer: batch size \(options.batchSize) is not divisible by \(ranks) ranks")
        let say: (String) -> Void = isWriter ? report : { _ in }
        if ranks > 1, case .seconds? = options.budget {
            throw RunConfigurationError("a wall-clock budget cannot be shared by \(ranks) ranks' clocks; give an image budget")
        }
        if isWriter { try fm.createDirectory(at: runDirectory, withIntermediateDirectories: true) }
        let store = CheckpointStore(runDirectory: runDirectory)
        let optimizer = Adam(parameters: objective.trainableParameters, lr: options.learningRate, weightDecay: options.weightDecay)
        // A budget replaces `iterations`: an image budget is a step count, a wall-clock budget ends the run when spent.
        let timeBudget: Double? = { if case .seconds(let s)? = options.budget { return s }; return nil }()
        let end = options.budget?.iterations(batchSize: options.batchSize) ?? (timeBudget != nil ? Int.max : options.iterations)
        let schedule = CosineAnnealingLR(baseLR: options.learningRate, tMax: end == Int.max ? 1 : end, etaMin: options.minLearningRate)
        var start = 0
        var samplerState: TrainingSampler.State? = nil
        var best: (psnr: Double, iteration: Int)? = nil
        var secondsBefore = 0.0
        let logURL = runDirectory.appendingPathComponent("log.jsonl")
        func validationDue(_ done: Int, last: Bool) -> Bool {
            validation != nil && options.validateEvery > 0 && done > 0 && (done % options.validateEvery == 0 || last)
        }
        var pendingValidation = false
        if let resume {
            let state = try CheckpointStore.load(resume, student: objective.student, projectors: objective.projectors, optimizer: optimizer)
            start = state.iteration
            samplerState = state.sampler
            if let p = state.bestPSNR, let i = state.bestIteration { best = (p, i) }
            // Lines logged after the checkpoint are logged again by this run: drop them first (rank 0 owns the log).
            let kept = isWriter ? try JSONLWriter.truncate(logURL, toIteration: start) : nil
            secondsBefore = state.seconds ?? kept?.seconds ?? 0
            // The checkpoint due at a validation's iteration is written before it: a validation logged after the
            // checkpoint counts for the best weights (saved before its line), a missing one runs now.
            for v in kept?.validations ?? [] where best == nil || v.psnr > best!.psnr { best = (v.psnr, v.iteration) }
            pendingValidation = isWriter && validationDue(start, last: start == end) && !(kept?.validations.contains { $0.iteration == start } ?? false)
            say("resumed from \(resume.path) at iteration \(start)")
        }
        let parallel = DataParallelSync(communicator: communicator, parameters: objective.trainableParameters)
        parallel.broadcastParameters()
        if ranks > 1 { objective.gatherNegatives = { [communicator] in communicator.allGather($0) } }
        defer { objective.gatherNegatives = nil }
        let sampler = TrainingSampler(source: training, batchSize: options.batchSize, patchSize: options.patchSize, seed: options.seed,
                                      range: .minusOneToOne, workers: max(1, options.workers), resume: samplerState,
                                      shard: (communicator.rank, ranks))
        defer { sampler.stop() }
        let log = isWriter ? try JSONLWriter(logURL, append: resume != nil) : nil
        let stop = StopSignal()
        defer { stop.uninstall() }
        let progress = ProgressLine(total: end == Int.max ? start + 1 : end, imagesPerIteration: options.batchSize, report: say)
        var stopAgreed = false

        var lastCheckpoint = resume
        var trainSeconds = 0.0, trainedImages = 0
        func checkpoint(_ iteration: Int) throws -> URL {
            // Only rank 0 writes; the others name the folder it writes.
            guard isWriter else { return store.directory.appendingPathComponent(String(format: "iter-%08d", iteration)) }
            var state = CheckpointState(iteration: iteration, sampler: sampler.state, bestPSNR: best?.psnr, bestIteration: best?.iteration, config: configJSON)
            state.seconds = secondsBefore + trainSeconds
            let url = try StopSignal.whileWriting { try store.save(student: objective.student, projectors: objective.projectors, optimizer: optimizer, state: state) }
            lastCheckpoint = url
            return url
        }

        func runValidation(_ done: Int) throws {
            guard isWriter, let validation else { return }
            progress.finishLine()
            if let (psnr, ssim) = try evaluate(validation, iteration: done) {
                if best == nil || psnr > best!.psnr {
                    best = (psnr, done)
                    try StopSignal.whileWriting { try saveBest() }
                }
                try StopSignal.whileWriting { try log?.write(["iter": done, "val_psnr": psnr, "val_ssim": ssim]) }
                say(String(format: "validation at %d: PSNR %.3f dB, SSIM %.4f", done, psnr, ssim))
            }
            objective.student.train()
        }
        if pendingValidation { try runValidation(start) }

        objective.student.train()
        var lastTerms: [String: Float] = [:]
        var skippedBatches = 0, failedInARow = 0
        var completed = start
        for iteration in start..<end {
            if (ranks == 1 ? stop.requested : stopAgreed) || stopAfter.map({ iteration >= $0 }) == true {
                throw TrainingError.interrupted(iteration: iteration, checkpoint: try checkpoint(iteration))
            }
            var began = DispatchTime.now()
            optimizer.lr = timeBudget.map {
                TrainingBudget.cosineLR(base: options.learningRate, etaMin: options.minLearningRate, fraction: (secondsBefore + trainSeconds) / $0)
            } ?? schedule.lr(at: iteration)
            var next: TrainingBatch? = nil
            while next == nil {
                // Waiting for a slow batch stays interruptible (one process; under MPI the ranks agree on a stop
                // after each step, so no rank may leave the step alone).
                let interruptible = ranks == 1
                while sampler.readyBatches == 0 && !(interruptible && stop.requested) { usleep(1000) }
                if interruptible && stop.requested { throw TrainingError.interrupted(iteration: iteration, checkpoint: try checkpoint(iteration)) }
                do { next = try sampler.next() } catch {
                    // An image that cannot be read costs its batch, not the run — in one process. Ranks cannot skip
                    // a batch alone (the others would wait in the all-reduce): there it ends the job.
                    if ranks > 1 { throw error }
                    skippedBatches += 1; failedInARow += 1
                    progress.finishLine()
                    report("skd: warning: skipped a batch at iteration \(iteration + 1): \(error)")
                    if failedInARow >= 20 { throw RunConfigurationError("\(failedInARow) batches in a row could not be built; the last: \(error)") }
                    began = DispatchTime.now()
                }
            }
            failedInARow = 0
            let batch = next!
            optimizer.zeroGrad()
            let loss = objective(input: batch.input, target: batch.target)
            if ranks == 1, let bad = loss.terms.first(where: { !$0.value.isFinite }) {
                throw TrainingError.nonFinite(term: bad.name, iteration: iteration, lastCheckpoint: lastCheckpoint)
            }
            loss.total.backward()
            // Ranks > 1: gradients and terms become the global batch's means, the stop request everyone's.
            let (terms, stopAny) = parallel.reduce(terms: loss.terms, stop: stop.requested)
            stopAgreed = stopAny
            if let bad = terms.first(where: { !$0.value.isFinite }) {
                throw TrainingError.nonFinite(term: bad.name, iteration: iteration, lastCheckpoint: lastCheckpoint)
            }
            optimizer.step()
            trainSeconds += Double(DispatchTime.now().uptimeNanoseconds - began.uptimeNanoseconds) / 1e9
            trainedImages += batch.input.shape[0] * ranks
            lastTerms = Dictionary(terms.map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })

            let done = iteration + 1
            completed = done
            let spent = secondsBefore + trainSeconds
            let last = done == end || timeBudget.map { spent >= $0 } == true
            if let timeBudget, !last { progress.total = done + Int((timeBudget - spent) / max(trainSeconds / Double(done - start), 1e-9)) + 1 }
            if last { progress.total = done }
            if done == 1 || done % max(1, options.logEvery) == 0 || last {
                var entry: [String: Any] = ["iter": done, "lr": Double(optimizer.lr), "seconds": spent]
                for (name, value) in terms { entry[name] = Double(value) }
                if let budget = options.budget {
                    entry["budget"] = budget.description
                    entry["budget_used"] = timeBudget.map { spent / $0 } ?? Double(done) / Double(end)
                    entry["train_seconds"] = spent
                }
                try StopSignal.whileWriting { try log?.write(entry) }
            }
            if isWriter { progress.update(done, terms: terms, secondsPerIteration: trainSeconds / Double(done - start)) }

            // A checkpoint due at this iteration comes before its validation, so a validation that fails loses
            // nothing (the last one is written after the loop, with the final best).
            let checkpointDue = options.checkpointEvery > 0 && done % options.checkpointEvery == 0
            if (checkpointDue && !last) || (last && validationDue(done, last: true)) {
                _ = try checkpoint(done)
            }
            if validationDue(done, last: last) { try runValidation(done) }
            if last { break }
        }
        progress.finishLine()
        if let line = parallel.summary(secondsPerStep: trainSeconds / Double(max(1, completed - start))) { say(line) }
        if skippedBatches > 0 { say("skd: warning: \(skippedBatches) batch(es) skipped for unreadable images") }
        if let budget = options.budget {
            let spent = secondsBefore + trainSeconds
            say(String(format: "budget %@: %d iterations, %d images, %.1f s of training", budget.description, completed,
                       completed * options.batchSize, spent))
        }
        let final = try checkpoint(completed)
        return TrainingSummary(iterations: completed, lastTerms: lastTerms, bestPSNR: best?.psnr, bestIteration: best?.iteration,
                               imagesPerSecond: Double(trainedImages) / max(trainSeconds, 1e-9), checkpoint: final,
                               trainingSeconds: secondsBefore + trainSeconds)
    }

    /// Mean PSNR/SSIM (RGB) of the student over the validation set (`RestorationEvaluation`, whole images in
    /// [−1, 1], the run's seed); writes the first `options.samples` restorations to `<run>/samples`.
    ///
    /// - Returns: `nil` when no validation image could be read (each unreadable one is skipped with a warning).
    func evaluate(_ source: any PairedImageSource, iteration: Int) throws -> (Double, Double)? {
        var settings = EvaluationOptions()
        settings.range = .minusOneToOne
        settings.seed = options.seed
        settings.maxImages = options.validationImages
        let samples = runDirectory.appendingPathComponent("samples")
        let result = try RestorationEvaluation.run([objective.student], on: source, options: settings, restored: { restored in
            guard restored.index < options.samples else { return }
            try FileManager.default.createDirectory(at: samples, withIntermediateDirectories: true)
            let stem = (restored.name as NSString).deletingPathExtension.replacingOccurrences(of: "/", with: "_")
            try StopSignal.whileWriting {
                try restored.image.write(to: samples.appendingPathComponent(String(format: "iter-%08d_%@.png", iteration, stem)))
            }
        }, skipped: { name, error in
            report("skd: warning: validation at \(iteration) skips \(name): \(error)")
        })
        return result.map { ($0.models[0].psnr, $0.models[0].ssim) }
    }

    /// The student's weights at the best validation PSNR, as `<run>/best.safetensors`.
    func saveBest() throws {
        try SafeTensors.write(objective.student.stateDict(), metadata: ["format": "swiftskd-weights", "config": configJSON],
                              to: runDirectory.appendingPathComponent("best.safetensors"))
    }
}

/// Appends JSON objects, one per line, flushing each.
final class JSONLWriter {
    let handle: FileHandle
    init(_ url: URL, append: Bool) throws {
        if !append || !FileManager.default.fileExists(atPath: url.path) {
            try Data().write(to: url)
        }
        handle = try FileHandle(forWritingTo: url)
        handle.seekToEndOfFile()
    }
    deinit { try? handle.close() }

    /// Keeps the lines of `url` up to iteration `iteration` (and drops a line cut short by a crash), replacing the
    /// file atomically. A resumed run logs the later iterations again.
    ///
    /// - Returns: the `seconds` of the last kept line that has one.
    /// - Returns: the `seconds` of the last kept line that has one, and the kept validation results.
    @discardableResult
    static func truncate(_ url: URL, toIteration iteration: Int) throws -> (seconds: Double?, validations: [(iteration: Int, psnr: Double)]) {
        guard let data = FileManager.default.contents(atPath: url.path) else { return (nil, []) }
        var kept = Data(), seconds: Double? = nil, validations: [(iteration: Int, psnr: Double)] = []
        for line in data.split(separator: 0x0A, omittingEmptySubsequences: true) {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                  let iter = (object["iter"] as? NSNumber)?.intValue, iter <= iteration else { continue }
            if let s = (object["seconds"] as? NSNumber)?.doubleValue { seconds = s }
            if let p = (object["val_psnr"] as? NSNumber)?.doubleValue { validations.append((iter, p)) }
            kept.append(contentsOf: line)
            kept.append(0x0A)
        }
        if kept != data { try kept.write(to: url, options: .atomic) }
        return (seconds, validations)
    }
    func write(_ object: [String: Any]) throws {
        var data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        data.append(0x0A)
        handle.write(data)
    }
}

/// SIGINT/SIGTERM turn into a flag the loop polls, so a signal ends the run with a checkpoint, not mid-write.
final class StopSignal {
    private let lock = NSLock()
    private var flag = false
    private var sources: [DispatchSourceSignal] = []

    init() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [weak self] in self?.set() }
            source.resume()
            sources.append(source)
        }
    }

    /// The first signal asks for a checkpoint at the next iteration; a second one, while that is still pending
    /// (e.g. during a long validation), exits at once: checkpoints and log lines are written whole or not at all.
    /// Held while the trainer writes a file; the immediate exit waits for it.
    static let writing = NSLock()

    /// Runs `body` (a file write) so that an immediate exit on a second signal cannot cut it.
    static func whileWriting<T>(_ body: () throws -> T) rethrows -> T {
        writing.lock()
        defer { writing.unlock() }
        return try body()
    }

    private func set() {
        lock.lock(); let again = flag; flag = true; lock.unlock()
        if again {
            // Not in the middle of a file: checkpoints, log lines and samples are written whole or not at all.
            StopSignal.writing.lock()
            let line = "\nskd: interrupted again: exiting at once; the last checkpoint is intact\n"
            _ = line.withCString { write(2, $0, strlen($0)) }
            _exit(130)
        }
    }
    var requested: Bool { lock.lock(); defer { lock.unlock() }; return flag }

    func uninstall() {
        for s in sources { s.cancel() }
        sources.removeAll()
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}

/// A progress bar on a terminal (redrawn in place), plain lines every few seconds otherwise.
final class ProgressLine {
    var total: Int
    let imagesPerIteration: Int
    let report: (String) -> Void
    let isTerminal = isatty(fileno(stderr)) != 0
    var lastPlain = DispatchTime.now()
    var open = false

    init(total: Int, imagesPerIteration: Int = 0, report: @escaping (String) -> Void) {
        self.total = total; self.imagesPerIteration = imagesPerIteration; self.report = report
    }

    /// - Parameters:
    ///   - done: completed iterations.
    ///   - secondsPerIteration: mean training time per iteration in this process.
    func update(_ done: Int, terms: [(name: String, value: Float)], secondsPerIteration: Double) {
        let fraction = Double(done) / Double(max(total, 1))
        let eta = Double(total - done) * secondsPerIteration
        let etaText = String(format: "%d:%02d:%02d", Int(eta) / 3600, Int(eta) / 60 % 60, Int(eta) % 60)
        let termText = terms.map { String(format: "%@ %.4g", $0.name, $0.value) }.joined(separator: "  ")
        var rate = String(format: "%.2f it/s  ETA %@", 1 / max(secondsPerIteration, 1e-9), etaText)
        // The global batch over all ranks: the job's throughput.
        if imagesPerIteration > 0 { rate += String(format: "  %.1f img/s", Double(imagesPerIteration) / max(secondsPerIteration, 1e-9)) }
        if isTerminal {
            let width = 24, filled = Int(fraction * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            FileHandle.standardError.write(Data("\r\u{1B}[2K\(bar) \(done)/\(total)  \(rate)  \(termText)".utf8))
            open = true
        } else {
            let now = DispatchTime.now()
            if done == total || Double(now.uptimeNanoseconds - lastPlain.uptimeNanoseconds) > 10e9 || done == 1 {
                lastPlain = now
                report("iter \(done)/\(total)  \(rate)  \(termText)")
            }
        }
    }

    func finishLine() {
        if open { FileHandle.standardError.write(Data("\n".utf8)); open = false }
    }
}
