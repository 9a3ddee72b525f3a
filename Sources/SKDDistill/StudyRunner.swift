// `skd study`: the runs of a study's options file one after the other, on the same teacher, seed and batches,
// resumable run by run (a finished run is skipped, an interrupted one resumes from its checkpoint), each evaluated on
// the held-out set after training; then the table (JSON, CSV, Markdown) and the PSNR-versus-training-time figure.

import Dispatch
import Foundation
import SKDImage
import SKDModels
import SKDTensor

/// One row of a study's table.
public struct StudyRow: Codable, Equatable, Sendable {
    /// The run's name.
    public var name: String
    /// The method.
    public var method: String
    /// The run's overrides of the shared options (`key.path=value`).
    public var overrides: [String]
    /// Optimizer steps completed.
    public var steps: Int
    /// Training images seen (steps × batch size).
    public var images: Int
    /// Training seconds (forward, backward, optimizer step, batch loading; not validation), across resumes.
    public var trainingSeconds: Double
    /// Mean PSNR (RGB, dB) of the final weights on the held-out set.
    public var psnr: Double
    /// Mean SSIM (RGB) on the held-out set.
    public var ssim: Double
    /// Mean PSNR of the luma channel (dB) on the held-out set.
    public var psnrY: Double
    /// Held-out images measured.
    public var testImages: Int
    /// Teacher forward passes read from the study's cache during this run (the last process of it).
    public var cacheHits: Int
    /// Teacher forward passes computed during this run (the last process of it).
    public var cacheMisses: Int
    /// The `skd distill` command that reproduces the run.
    public var command: String
    /// The machine's 1-minute load average when the run's training started and when it ended (`/proc/loadavg`;
    /// `nil` where unavailable): the context of `trainingSeconds` on a shared machine.
    public var load: [Double]? = nil

    enum CodingKeys: String, CodingKey {
        case name, method, overrides, steps, images, psnr, ssim, command, load
        case trainingSeconds = "training_seconds", psnrY = "psnr_y", testImages = "test_images"
        case cacheHits = "cache_hits", cacheMisses = "cache_misses"
    }
}

/// A reference row measured once per study: the degraded input, or the teacher.
public struct StudyReference: Codable, Equatable, Sendable {
    /// "input (degraded)" or "teacher".
    public var name: String
    /// Mean PSNR (RGB, dB).
    public var psnr: Double
    /// Mean SSIM (RGB).
    public var ssim: Double
    /// Mean PSNR-Y (dB).
    public var psnrY: Double

    enum CodingKeys: String, CodingKey { case name, psnr, ssim, psnrY = "psnr_y" }
}

/// What a study's table files hold.
public struct StudyTable: Codable, Equatable, Sendable {
    /// The shared setting in words (budget, batch, crops, data, teacher).
    public var setting: String
    /// The teacher's forward pass over the batch schedule, computed once before the runs (seconds; `nil` when not
    /// precomputed).
    public var teacherPassSeconds: Double?
    /// The degraded input and the teacher on the held-out set.
    public var references: [StudyReference]
    /// One row per run, in the study's order.
    public var rows: [StudyRow]

    enum CodingKeys: String, CodingKey { case setting, references, rows, teacherPassSeconds = "teacher_pass_seconds" }

    /// The CSV text: a header and one line per run.
    public func csv() -> String {
        func field(_ s: String) -> String { s.contains(",") || s.contains("\"") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s }
        var lines = ["name,method,overrides,steps,images,training_seconds,psnr,ssim,psnr_y,test_images,load_start,load_end,command"]
        for r in rows {
            lines.append([field(r.name), r.method, field(r.overrides.joined(separator: " ")), String(r.steps), String(r.images),
                          String(format: "%.1f", r.trainingSeconds), String(format: "%.3f", r.psnr), String(format: "%.4f", r.ssim),
                          String(format: "%.3f", r.psnrY), String(r.testImages), r.load.map { String(format: "%.2f", $0[0]) } ?? "",
                          r.load.map { String(format: "%.2f", $0[1]) } ?? "", field(r.command)].joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The Markdown text: the setting, the table (references first) and the commands.
    public func markdown() -> String {
        var out = "\(setting)\n\n| run | method | steps | images | training time | PSNR (RGB) | SSIM | PSNR-Y | load (start–end) |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        for r in references {
            out += String(format: "| %@ | - | - | - | - | %.2f | %.4f | %.2f | - |\n", r.name, r.psnr, r.ssim, r.psnrY)
        }
        for r in rows {
            let name = r.overrides.isEmpty ? r.name : "\(r.name) (\(r.overrides.joined(separator: ", ")))"
            let load = r.load.map { String(format: "%.1f–%.1f", $0[0], $0[1]) } ?? "-"
            out += String(format: "| %@ | %@ | %d | %d | %.1f s | %.2f | %.4f | %.2f | %@ |\n", name, r.method, r.steps, r.images,
                          r.trainingSeconds, r.psnr, r.ssim, r.psnrY, load)
        }
        if let t = teacherPassSeconds {
            out += String(format: "\nThe teacher's forward pass over the batch schedule was computed once before the runs (%.1f s) and read from disk by every run: the training times above do not include it.\n", t)
        }
        out += "\nEach row reproduced by:\n\n```sh\n" + rows.map(\.command).joined(separator: "\n") + "\n```\n"
        return out
    }
}

/// Runs a study (see the file comment).
public final class StudyRunner {
    /// The study's options.
    public let study: StudyFile
    /// Progress lines; defaults to standard error.
    public var report: (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
    /// Interrupt each run started by this runner after this many steps (with a checkpoint, as on SIGINT); for tests.
    public var stopAfter: Int? = nil
    /// Check every training image once before the first run.
    public var preflight = false

    /// A runner for `study`.
    public init(study: StudyFile) { self.study = study }

    /// The table files: `study.json`, `study.csv`, `study.md`, and the figure `psnr-time.png`.
    public var tableFiles: [URL] { ["study.json", "study.csv", "study.md", "psnr-time.png"].map { study.directory.appendingPathComponent($0) } }

    /// Runs every run not finished yet, then writes the table files.
    ///
    /// - Throws: `RunConfigurationError` (bad options, a run folder holding other options), `TrainingError`
    ///   (interrupted: run the study again to resume).
    @discardableResult
    public func run() throws -> StudyTable {
        let fm = FileManager.default
        try fm.createDirectory(at: study.directory, withIntermediateDirectories: true)
        try Data(try study.sharedYAML().utf8).write(to: study.sharedOptionsFile, options: .atomic)
        guard let testConfiguration = study.testSet else { throw RunConfigurationError("\(study.file.path): study.test: missing") }
        let test = try testConfiguration.makeSource(role: "study test")
        let seed = study.shared.seed
        var cache: TeacherForwardCache? = nil
        // What was measured once with the teacher (kept across resumes, dropped when the teacher's file changes).
        var record = (try? JSONDecoder().decode(TeacherRecord.self, from: Data(contentsOf: teacherRecordURL))) ?? TeacherRecord(teacher: "")
        var teacherChecked = false
        var rows: [StudyRow] = []

        for (index, run) in study.spec.runs.enumerated() {
            let wanted = try study.configuration(of: index)
            let directory = study.runDirectory(run.name)
            let resultURL = directory.appendingPathComponent("result.json")
            if let data = fm.contents(atPath: resultURL.path) {
                let stored = try? JSONDecoder().decode(StoredResult.self, from: data)
                guard let stored, stored.options == wanted.jsonString() else {
                    throw RunConfigurationError("\(directory.path) holds a finished run with other options than study.runs[\(index)] (\(run.name)) of \(study.file.path); remove the folder to run it again")
                }
                report("study: \(run.name): finished earlier, skipped")
                rows.append(stored.row)
                continue
            }
            var configuration = wanted
            var checkpoint: URL? = nil
            if CheckpointStore(runDirectory: directory).latest() != nil {
                let (stored, latest) = try RunConfiguration.resuming(directory)
                guard stored.jsonString() == wanted.jsonString() else {
                    throw RunConfigurationError("\(directory.path) holds a run with other options than study.runs[\(index)] (\(run.name)) of \(study.file.path); remove the folder to start it again")
                }
                configuration = stored
                checkpoint = latest
            }
            let prepared = try configuration.prepare(resuming: checkpoint != nil, preflight: preflight && index == 0 ? report : nil)
            let trainer = prepared.makeTrainer()
            trainer.report = report
            trainer.stopAfter = stopAfter
            if let teacher = prepared.teacher, !teacherChecked {
                teacherChecked = true
                let identity = Self.identity(of: prepared.teacherFile)
                if record.teacher != identity { record = TeacherRecord(teacher: identity) }
                if study.spec.teacherCacheMB > 0 {
                    cache = try openCache(teacher: teacher, identity: identity)
                    let steps = scheduleSteps(configuration.training)
                    if study.spec.precomputeTeacher, let steps, record.passBatches != steps || cache!.bytesUsed == 0 {
                        record.passSeconds = try precompute(teacher: teacher, cache: cache!, training: prepared.training,
                                                            options: configuration.training, steps: steps)
                        record.passBatches = steps
                        try JSONEncoder().encode(record).write(to: teacherRecordURL, options: .atomic)
                    }
                }
                if record.references == nil {
                    report("study: measuring the degraded input and the teacher on the held-out set")
                    let t = try Self.evaluate(teacher, on: test, seed: seed)
                    record.references = [StudyReference(name: "input (degraded)", psnr: t.inputPSNR, ssim: t.inputSSIM, psnrY: t.inputPSNRY),
                                         StudyReference(name: "teacher", psnr: t.psnr, ssim: t.ssim, psnrY: t.psnrY)]
                    try JSONEncoder().encode(record).write(to: teacherRecordURL, options: .atomic)
                }
            }
            if prepared.teacher != nil { trainer.objective.teacherCache = cache }
            if checkpoint == nil {
                try fm.createDirectory(at: directory, withIntermediateDirectories: true)
                try Data(configuration.yamlString().utf8).write(to: directory.appendingPathComponent("options.yml"))
            }
            report("study: \(run.name) (\(run.method.rawValue)\(run.set.isEmpty ? "" : ", " + run.set.joined(separator: " ")))\(checkpoint.map { ": resuming from \($0.path)" } ?? "")")
            let (hits0, misses0) = (cache?.hits ?? 0, cache?.misses ?? 0)
            let loadBefore = Self.loadAverage()
            let summary = try trainer.run(resume: checkpoint)
            let loadAfter = Self.loadAverage()
            let measured = try Self.evaluate(prepared.student, on: test, seed: seed)
            let row = StudyRow(name: run.name, method: run.method.rawValue, overrides: run.set, steps: summary.iterations,
                               images: summary.iterations * configuration.training.batchSize, trainingSeconds: summary.trainingSeconds,
                               psnr: measured.psnr, ssim: measured.ssim, psnrY: measured.psnrY, testImages: measured.count,
                               cacheHits: trainer.objective.teacherCache == nil ? 0 : cache!.hits - hits0,
                               cacheMisses: trainer.objective.teacherCache == nil ? 0 : cache!.misses - misses0,
                               command: study.command(of: index),
                               load: loadBefore.flatMap { b in loadAfter.map { [b, $0] } })
            report(String(format: "study: %@: %d steps, %.1f s of training, held-out PSNR %.3f dB, SSIM %.4f", run.name, row.steps,
                          row.trainingSeconds, row.psnr, row.ssim))
            try JSONEncoder().encode(StoredResult(row: row, options: wanted.jsonString())).write(to: resultURL, options: .atomic)
            rows.append(row)
        }
        let table = StudyTable(setting: setting(), teacherPassSeconds: record.passSeconds, references: record.references ?? [], rows: rows)
        try write(table)
        return table
    }

    /// A finished run: its row and the options it ran with.
    struct StoredResult: Codable {
        var row: StudyRow
        var options: String
    }

    /// What a study measures once with its teacher, keyed by the teacher's weights file.
    struct TeacherRecord: Codable {
        /// `identity(of:)` of the teacher's weights file.
        var teacher: String
        /// The degraded input and the teacher on the held-out set.
        var references: [StudyReference]? = nil
        /// Seconds of the precomputed teacher pass, and its batches.
        var passSeconds: Double? = nil
        var passBatches: Int? = nil
    }

    var teacherRecordURL: URL { study.directory.appendingPathComponent("teacher.json") }

    /// A weights file's path, size and modification date: a changed teacher gives another identity.
    static func identity(of file: URL?) -> String {
        var identity = file?.path ?? "?"
        if let file, let attributes = try? FileManager.default.attributesOfItem(atPath: file.path) {
            identity += " \((attributes[.size] as? NSNumber)?.intValue ?? 0) \((attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)"
        }
        return identity
    }

    /// The steps of the schedule when known in advance (an image budget or a step count), `nil` for a wall clock.
    func scheduleSteps(_ options: TrainingOptions) -> Int? {
        if let budget = options.budget { return budget.iterations(batchSize: options.batchSize) }
        return options.iterations
    }

    func openCache(teacher: any TappedModel, identity: String) throws -> TeacherForwardCache {
        var extra: [String] = []
        for index in study.spec.runs.indices { extra += (try study.configuration(of: index)).distillation.taps ?? [] }
        let cache = try TeacherForwardCache(directory: study.directory.appendingPathComponent("teacher-cache"),
                                            limitMB: study.spec.teacherCacheMB,
                                            taps: TeacherForwardCache.taps(for: teacher, extra: extra), teacher: identity)
        report(String(format: "study: teacher cache %@ (%.0f of %d MB used)", cache.directory.path, Double(cache.bytesUsed) / 1e6, study.spec.teacherCacheMB))
        return cache
    }

    /// The teacher's forward pass over the first `steps` batches of the schedule, into the cache.
    ///
    /// - Returns: the seconds it took.
    func precompute(teacher: any TappedModel, cache: TeacherForwardCache, training: any PairedImageSource,
                    options: TrainingOptions, steps: Int) throws -> Double {
        // The trainer's sampler, with the same arguments: the same batches in the same order.
        let sampler = TrainingSampler(source: training, batchSize: options.batchSize, patchSize: options.patchSize, seed: options.seed,
                                      range: .minusOneToOne, workers: max(1, options.workers))
        defer { sampler.stop() }
        let began = DispatchTime.now()
        var last = began
        for step in 0..<steps {
            let batch = try sampler.next()
            _ = cache.forward(teacher, input: batch.input, needing: [])
            let now = DispatchTime.now()
            if Double(now.uptimeNanoseconds - last.uptimeNanoseconds) > 10e9 || step + 1 == steps {
                last = now
                report("study: teacher pass \(step + 1)/\(steps) batches (\(cache.overBudget) beyond the cache's bound)")
            }
        }
        return Double(DispatchTime.now().uptimeNanoseconds - began.uptimeNanoseconds) / 1e9
    }

    /// The shared setting in words.
    func setting() -> String {
        let c = study.shared, t = c.training
        let budget = t.budget.map { "budget \($0.description)" } ?? "\(t.iterations) steps"
        let student = c.student.map { $0.jsonString() } ?? "?"
        return "Setting: \(budget), batch \(t.batchSize), \(t.patchSize)×\(t.patchSize) crops, lr \(t.learningRate) → \(t.minLearningRate) (cosine), seed \(c.seed); student \(student); teacher \(c.teacherWeights ?? "none"); training data \(c.trainData?.root ?? "?") (\(c.trainData?.degradation ?? "paired")); held-out \(study.testSet?.root ?? "?") (\(study.testSet?.degradation ?? "paired"))."
    }

    /// Writes the table files and the figure.
    func write(_ table: StudyTable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(table).write(to: tableFiles[0], options: .atomic)
        try Data(table.csv().utf8).write(to: tableFiles[1], options: .atomic)
        try Data(table.markdown().utf8).write(to: tableFiles[2], options: .atomic)
        var curves: [(name: String, points: [(x: Double, y: Double)])] = []
        for row in table.rows {
            var points = Self.validationCurve(log: study.runDirectory(row.name).appendingPathComponent("log.jsonl"))
            // The held-out result of the final weights ends the curve (the validation set may be another one).
            if points.last.map({ abs($0.x - row.trainingSeconds) > 1e-6 }) ?? true { points.append((row.trainingSeconds, row.psnr)) }
            curves.append((row.name, points))
        }
        let image = CurvePlot.render(curves, title: "held-out PSNR versus training time", xLabel: "training time (s)", yLabel: "PSNR (dB)")
        try image.write(to: tableFiles[3])
    }

    /// (training seconds, validation PSNR) of a run's log: each validation at iteration i placed at the training
    /// time logged at i (interpolated between the logged iterations around it).
    public static func validationCurve(log url: URL) -> [(x: Double, y: Double)] {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        var seconds: [(Double, Double)] = [(0, 0)], psnr: [(Double, Double)] = []
        for line in text.split(separator: "\n") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let iter = (object["iter"] as? NSNumber)?.doubleValue else { continue }
            if let s = (object["seconds"] as? NSNumber)?.doubleValue { seconds.append((iter, s)) }
            if let p = (object["val_psnr"] as? NSNumber)?.doubleValue { psnr.append((iter, p)) }
        }
        seconds.sort { $0.0 < $1.0 }
        func time(at iter: Double) -> Double {
            guard let upper = seconds.firstIndex(where: { $0.0 >= iter }) else { return seconds.last!.1 }
            let (i1, s1) = seconds[upper]
            if i1 == iter || upper == 0 { return s1 }
            let (i0, s0) = seconds[upper - 1]
            return s0 + (s1 - s0) * (iter - i0) / (i1 - i0)
        }
        return psnr.map { (time(at: $0.0), $0.1) }
    }

    /// The 1-minute load average from `/proc/loadavg`, `nil` where there is none.
    static func loadAverage() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return nil }
        return text.split(separator: " ").first.flatMap { Double($0) }
    }

    /// Mean PSNR/SSIM/PSNR-Y of `model` and of the degraded inputs over `source`, the noise drawn from `seed` as
    /// the trainer's validation draws it.
    public static func evaluate(_ model: any TappedModel, on source: any PairedImageSource, seed: UInt64) throws
        -> (psnr: Double, ssim: Double, psnrY: Double, inputPSNR: Double, inputSSIM: Double, inputPSNRY: Double, count: Int) {
        // Left in eval mode: the caller puts a student back into training mode if it trains on.
        model.eval()
        let iterator = ValidationIterator(source: source, range: .minusOneToOne, seed: seed)
        var s = [Double](repeating: 0, count: 6), count = 0
        for index in 0..<source.count {
            let sample = try iterator.sample(at: index)
            let image = Image(tensor: Inference.restore(model, sample.input), range: .minusOneToOne)
            let input = sample.inputImage.quantized()
            s[0] += Metrics.psnr(image, sample.targetImage); s[1] += Metrics.ssim(image, sample.targetImage)
            s[2] += Metrics.psnr(image, sample.targetImage, space: .y)
            s[3] += Metrics.psnr(input, sample.targetImage); s[4] += Metrics.ssim(input, sample.targetImage)
            s[5] += Metrics.psnr(input, sample.targetImage, space: .y)
            count += 1
        }
        guard count > 0 else { throw RunConfigurationError("study: the held-out set is empty") }
        let n = Double(count)
        return (s[0] / n, s[1] / n, s[2] / n, s[3] / n, s[4] / n, s[5] / n, count)
    }
}
