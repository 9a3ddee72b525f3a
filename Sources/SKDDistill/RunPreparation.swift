// Every check before any work (option ranges, networks, teacher and VGG weights, data folders and image headers,
// the run folder), the prepared run, and resuming a run from its checkpoint.

import Foundation
import SKDImage
import SKDModels
import SKDNN
import SKDTensor

/// A checked run: datasets listed and probed, networks described, teacher and VGG weights read. Built by
/// `RunConfiguration.prepare(resuming:)`; `makeTrainer()` then starts no check that could fail on user input.
public final class PreparedRun {
    /// The resolved options.
    public let configuration: RunConfiguration
    /// The run folder.
    public let runDirectory: URL
    /// The training pairs.
    public let training: any PairedImageSource
    /// The validation pairs, when given.
    public let validation: (any PairedImageSource)?
    /// The student (or the model of `skd train`), built with the run seed.
    public let student: any TappedModel & ModelStatistics
    /// The teacher with its weights, in eval mode (distillation methods other than `none`).
    public let teacher: (any TappedModel & ModelStatistics)?
    /// Where the teacher's weights came from.
    public let teacherFile: URL?
    /// φ of the contrastive loss, when the method uses one.
    public let featureExtractor: ContrastiveFeatureExtractor?
    /// How the student's initial weights were set, when not freshly initialised (a line for the user).
    public internal(set) var initialization: String? = nil

    init(configuration: RunConfiguration, runDirectory: URL, training: any PairedImageSource, validation: (any PairedImageSource)?,
         student: any TappedModel & ModelStatistics, teacher: (any TappedModel & ModelStatistics)?, teacherFile: URL?,
         featureExtractor: ContrastiveFeatureExtractor?) {
        self.configuration = configuration; self.runDirectory = runDirectory; self.training = training; self.validation = validation
        self.student = student; self.teacher = teacher; self.teacherFile = teacherFile; self.featureExtractor = featureExtractor
    }

    /// The objective and the trainer of this run.
    public func makeTrainer() -> Trainer {
        let objective = DistillationObjective(teacher: teacher, student: student, options: configuration.distillation,
                                              featureExtractor: featureExtractor)
        return Trainer(objective: objective, training: training, validation: validation, options: configuration.training,
                       runDirectory: runDirectory, configJSON: configuration.jsonString())
    }
}

extension RunConfiguration {
    /// Checks everything a run needs and builds its parts, before any training step.
    ///
    /// Checks: option ranges; the network descriptions; the teacher's weights (present, readable, naming or given
    /// an architecture, of the student's family, fitting it); the taps; the VGG weights; the data folders (present,
    /// known layout, every file paired); every image's header (a PNG/JPEG that states its size, pairs of one size,
    /// no side smaller than the crop); the first image of each dataset decoded in full; the run folder not holding
    /// another run unless resuming.
    ///
    /// - Parameter resuming: the run continues from a checkpoint in its own folder.
    /// - Throws: `RunConfigurationError`, one line naming the file or value.
    /// - Parameter preflight: when given, every training and validation image is decoded once (in parallel)
    ///   and every unreadable file named; the closure receives the progress lines.
    public func prepare(resuming: Bool = false, preflight: ((String) -> Void)? = nil) throws -> PreparedRun {
        // Stored with absolute paths, a run resumes on the same data from any folder.
        try withAbsolutePaths().prepareChecked(resuming: resuming, preflight: preflight)
    }

    /// The memory one training step needs (student activations and gradients, the teacher's forward pass, the
    /// batches in flight), estimated from the architectures alone.
    public func estimatedStepBytes(student: ModelSpec, teacher: ModelSpec?) -> Double {
        let pixels = Double(training.batchSize) * Double(training.patchSize) * Double(training.patchSize)
        let perPixel = ModelCost.trainingBytesPerPixel(student) + (teacher.map(ModelCost.inferenceBytesPerPixel) ?? 0) + 3 * 4 * 2 * 5
        return pixels * perPixel
    }

    /// The options with every file path (data roots, teacher and VGG weights, the output) made absolute against
    /// the current folder.
    public func withAbsolutePaths() -> RunConfiguration {
        func absolute(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.path }
        var c = self
        if let t = c.trainData { c.trainData?.root = absolute(t.root) }
        if let v = c.valData { c.valData?.root = absolute(v.root) }
        c.teacherWeights = c.teacherWeights.map(absolute)
        c.vggWeights = c.vggWeights.map(absolute)
        c.output = absolute(c.output ?? "runs/\(name)")
        return c
    }

    private func prepareChecked(resuming: Bool, preflight: ((String) -> Void)?) throws -> PreparedRun {
        let t = training
        func positive(_ value: Int, _ key: String) throws {
            guard value > 0 else { throw RunConfigurationError("\(key) must be positive, got \(value)") }
        }
        try positive(t.iterations, OptionKey.train(.iterations))
        try positive(t.batchSize, OptionKey.trainingData(.batchSize))
        try positive(t.patchSize, OptionKey.trainingData(.patchSize))
        try positive(t.workers, OptionKey.trainingData(.workers))
        try positive(t.logEvery, OptionKey.train(.logEvery))
        guard t.workers <= 256 else { throw RunConfigurationError("\(OptionKey.trainingData(.workers)) must lie in 1...256, got \(t.workers)") }
        guard t.patchSize <= 1 << 16 else { throw RunConfigurationError("\(OptionKey.trainingData(.patchSize)) must lie in 1...65536, got \(t.patchSize)") }
        guard t.learningRate > 0, t.learningRate.isFinite else { throw RunConfigurationError("\(OptionKey.train(.lr)) must be positive, got \(t.learningRate)") }
        guard t.weightDecay >= 0, t.weightDecay.isFinite else { throw RunConfigurationError("\(OptionKey.train(.weightDecay)) must be a number ≥ 0, got \(t.weightDecay)") }
        guard t.minLearningRate >= 0, t.minLearningRate <= t.learningRate else {
            throw RunConfigurationError("\(OptionKey.train(.minLR)) must lie in 0...lr (\(t.learningRate)), got \(t.minLearningRate)")
        }
        guard t.validateEvery >= 0, t.checkpointEvery >= 0, t.validationImages >= 0, t.samples >= 0 else {
            throw RunConfigurationError("\(OptionKey.val(.every)), \(OptionKey.val(.images)), \(OptionKey.val(.samples)) and \(OptionKey.train(.checkpointEvery)) must be ≥ 0")
        }
        let o = distillation
        guard o.feature.sigma > 0 else { throw RunConfigurationError("\(OptionKey.distill(.sigma)) must be positive, got \(o.feature.sigma)") }
        guard o.tau > 0 else { throw RunConfigurationError("\(OptionKey.distill(.tau)) must be positive, got \(o.tau)") }
        guard o.waveLevels > 0, o.waveLevels <= 16 else { throw RunConfigurationError("\(OptionKey.distill(.waveLevels)) must lie in 1...16, got \(o.waveLevels)") }
        for (key, value) in [(OptionKey.distill(.sigma), o.feature.sigma), (OptionKey.distill(.tau), o.tau), (OptionKey.distill(.alpha1), o.feature.alpha1),
                             (OptionKey.distill(.alpha2), o.alpha2), (OptionKey.distill(.alpha3), o.alpha3), (OptionKey.distill(.waveLambda), o.waveLambda),
                             (OptionKey.distill(.outputKDWeight), o.outputKDWeight)] + (o.contrastiveWeights ?? []).enumerated().map({ ("\(OptionKey.distill(.contrastiveWeights))[\($0.offset)]", $0.element) }) {
            guard value.isFinite, value >= 0 else { throw RunConfigurationError("\(key) must be a number ≥ 0, got \(value)") }
        }
        if let rows = o.feature.spatialTileRows, rows <= 0 { throw RunConfigurationError("\(OptionKey.distill(.spatialTileRows)) must be positive, got \(rows)") }

        // The run folder must be a folder or creatable: no file in the way on its path.
        do {
            let fm = FileManager.default
            var probe = runDirectory.standardizedFileURL
            var isDirectory: ObjCBool = false
            while !fm.fileExists(atPath: probe.path, isDirectory: &isDirectory) {
                let parent = probe.deletingLastPathComponent()
                if parent.path == probe.path { isDirectory = true; break }
                probe = parent
            }
            guard isDirectory.boolValue else {
                throw RunConfigurationError("output \(runDirectory.path): \(probe.path) is a file, not a folder")
            }
        }

        // Networks.
        guard let studentSpec = student else {
            throw RunConfigurationError(mode == .train
                ? "no network to train: give --model PRESET or \(OptionKey.network(.model)) in the options file (presets: \(ModelSpec.presetNames.joined(separator: ", ")))"
                : "no student network: give --student PRESET or \(OptionKey.network(.student)) in the options file (presets: \(ModelSpec.presetNames.joined(separator: ", ")))")
        }
        let method = mode == .train ? DistillationMethod.none : o.method
        var teacher: (any TappedModel & ModelStatistics)? = nil
        var teacherFile: URL? = nil
        var teacherWeightsSpec: ModelSpec? = nil
        if method != .none {
            guard let path = teacherWeights else {
                throw RunConfigurationError("method '\(method.rawValue)' needs a teacher: give --teacher WEIGHTS (a .safetensors file, checkpoint or run folder from skd train)")
            }
            let weights = try ModelWeights.load(URL(fileURLWithPath: path), architecture: teacherNetwork)
            if let declared = teacherNetwork, declared.architecture != weights.spec.architecture {
                throw RunConfigurationError("teacher \(path) holds a \(weights.spec.architecture), but \(OptionKey.network(.teacher)) says \(declared.architecture)")
            }
            guard weights.spec.architecture == studentSpec.architecture else {
                throw RunConfigurationError("teacher/student family mismatch: teacher \(path) is a \(weights.spec.architecture), the student a \(studentSpec.architecture); distillation pairs networks of one family")
            }
            teacher = try weights.makeModel()
            teacherFile = weights.file
            teacherWeightsSpec = weights.spec
        }
        // A batch that cannot fit is refused before minutes of gathering crops.
        let stepBytes = estimatedStepBytes(student: studentSpec, teacher: teacher == nil ? nil : teacherWeightsSpec)
        let memory = Double(ProcessInfo.processInfo.physicalMemory)
        if stepBytes > memory {
            func gb(_ b: Double) -> String { String(format: "%.3g GB", b / 1e9) }
            throw RunConfigurationError("\(OptionKey.trainingData(.batchSize)) \(t.batchSize) of \(t.patchSize)x\(t.patchSize) crops needs about \(gb(stepBytes)) per training step, more than this machine's \(gb(memory)); lower the batch or patch size")
        }
        ParameterInit.seed(seed)
        let studentModel = studentSpec.makeModel()
        var initialization: String? = nil
        if initWeights != nil && initFromTeacher {
            throw RunConfigurationError("give either \(OptionKey.network(.initWeights)) (--init-weights) or \(OptionKey.network(.initFromTeacher)) (--init-from-teacher), not both")
        }
        if let path = initWeights {
            let weights = try ModelWeights.load(URL(fileURLWithPath: path), architecture: studentSpec, onlyAsFallback: true)
            initialization = try StudentInitialization.load(weights.tensors, into: studentModel, strict: initStrict, source: weights.file.path)
        }
        if initFromTeacher {
            guard let path = teacherWeights else {
                throw RunConfigurationError("\(OptionKey.network(.initFromTeacher)) (--init-from-teacher) needs the teacher's weights: give --teacher WEIGHTS")
            }
            let weights = try ModelWeights.load(URL(fileURLWithPath: path), architecture: teacherNetwork)
            guard weights.spec.architecture == studentSpec.architecture else {
                throw RunConfigurationError("--init-from-teacher: teacher \(path) is a \(weights.spec.architecture), the student a \(studentSpec.architecture); slicing needs one family")
            }
            let sliced = try StudentInitialization.slicedFromTeacher(weights.tensors, student: studentModel.stateDict(), source: weights.file.path)
            try studentModel.load(sliced, strict: true)
            initialization = "student sliced from the teacher \(weights.file.path): every tensor's first channels, the first blocks of each level"
        }

        // Crops must suit both networks.
        let multiple = [studentModel.sizeMultiple, teacher?.sizeMultiple ?? 1].max()!
        guard t.patchSize % multiple == 0 else {
            throw RunConfigurationError("\(OptionKey.trainingData(.patchSize)) \(t.patchSize) is not a multiple of \(multiple), which the \(studentSpec.architecture) needs")
        }
        if method == .wave && t.patchSize % (1 << o.waveLevels) != 0 {
            throw RunConfigurationError("\(OptionKey.trainingData(.patchSize)) \(t.patchSize) is not divisible by 2^\(o.waveLevels) for \(OptionKey.distill(.waveLevels)) \(o.waveLevels)")
        }

        // Taps and the contrastive feature space.
        var extractor: ContrastiveFeatureExtractor? = nil
        if [.skd, .fitnet, .dckd].contains(method), let teacher {
            var known = teacher.tapNames
            if method == .dckd {
                guard let cascading = teacher as? CascadableTeacher else {
                    throw RunConfigurationError("method dckd needs a teacher whose remaining blocks can run from a tap (restormer, drsformer), not a \(studentSpec.architecture)")
                }
                known = cascading.cascadeTaps
            }
            let taps = o.taps ?? (method == .dckd ? DistillationTaps.dckdDefaults : DistillationTaps.defaults(for: teacher))
            guard !taps.isEmpty else { throw RunConfigurationError("\(OptionKey.distill(.taps)) is empty") }
            for tap in taps where !known.contains(tap) || !studentModel.tapNames.contains(tap) {
                throw RunConfigurationError("unknown tap '\(tap)' for method \(method.rawValue) with the \(studentSpec.architecture); known: \(known.joined(separator: ", "))")
            }
            if method == .skd && o.contrastive {
                var source = contrastiveFeatures
                if source == .auto { source = vggWeights == nil ? .teacher : .vgg19 }
                switch source {
                case .vgg19:
                    guard let path = vggWeights else {
                        throw RunConfigurationError("\(OptionKey.distill(.contrastiveFeatures)) vgg19 needs --vgg-weights (torchvision VGG-19 converted to safetensors; see Docs/user-guide.md)")
                    }
                    extractor = try VGGFeatureExtractor(weights: URL(fileURLWithPath: path))
                case .teacher, .auto:
                    extractor = TeacherEncoderFeatures(teacher: teacher)
                }
                if let weights = o.contrastiveWeights, weights.count != extractor!.defaultWeights.count {
                    throw RunConfigurationError("\(OptionKey.distill(.contrastiveWeights)) has \(weights.count) values for the \(extractor!.defaultWeights.count) layers of \(extractor!.summary)")
                }
            }
        }

        // Data.
        guard let trainData else {
            throw RunConfigurationError("no training data: give --train-data FOLDER or \(OptionKey.trainingData(.root)) in the options file")
        }
        let training = try trainData.makeSource(role: "training")
        try DataProbe.check(training, role: "training", minimumSide: t.patchSize)
        var validation: (any PairedImageSource)? = nil
        if let valData {
            var resolved = valData
            // A clean validation folder inherits the training degradation unless it states its own.
            if resolved.degradation == nil, trainData.degradation != nil, (try? PairedDataset.detectLayout(URL(fileURLWithPath: valData.root))) == nil {
                resolved.degradation = trainData.degradation
            }
            let source = try resolved.makeSource(role: "validation")
            try DataProbe.check(source, role: "validation", minimumSide: 2 * Metrics.ssimRadius + 1)
            validation = source
        }
        if let preflight {
            for (role, source) in [("training", training), ("validation", validation)] {
                guard let source else { continue }
                let failures = Preflight.decodeAll(source) { done, total in preflight("preflight: decoded \(done)/\(total) \(role) images") }
                if !failures.isEmpty {
                    let listed = failures.map { failure in
                        let reason = failure.reason.hasPrefix(failure.file.path + ": ") ? String(failure.reason.dropFirst(failure.file.path.count + 2)) : failure.reason
                        return "\(failure.file.path) (\(reason))"
                    }
                    throw RunConfigurationError("\(role) data: \(failures.count) unreadable image(s), fix or remove them (or --skip-preflight to skip them while training): \(listed.joined(separator: "; "))")
                }
            }
        }

        // The run folder.
        let directory = runDirectory
        if !resuming, CheckpointStore(runDirectory: directory).latest() != nil {
            throw RunConfigurationError("\(directory.path) already holds a run: continue it with --resume \(directory.path), or choose another --output")
        }
        let prepared = PreparedRun(configuration: self, runDirectory: directory, training: training, validation: validation,
                                   student: studentModel, teacher: teacher, teacherFile: teacherFile, featureExtractor: extractor)
        prepared.initialization = initialization
        return prepared
    }

    /// The options stored with a run's checkpoint, and the checkpoint itself.
    ///
    /// - Parameter path: a run folder (its latest checkpoint) or a checkpoint folder.
    /// - Throws: `RunConfigurationError` when no checkpoint is there.
    public static func resuming(_ path: URL) throws -> (configuration: RunConfiguration, checkpoint: URL) {
        let fm = FileManager.default
        var checkpoint = path
        if !fm.fileExists(atPath: path.appendingPathComponent("state.json").path) {
            guard let latest = CheckpointStore(runDirectory: path).latest() else {
                throw RunConfigurationError("\(path.path): no checkpoint to resume (expected a run folder with checkpoints/latest, or a checkpoint folder)")
            }
            checkpoint = latest
        }
        let stateURL = checkpoint.appendingPathComponent("state.json")
        let state: CheckpointState
        do { state = try JSONDecoder().decode(CheckpointState.self, from: Data(contentsOf: stateURL)) } catch {
            throw RunConfigurationError("\(stateURL.path): not a SwiftSKD checkpoint state (\(ErrorText.describe(error)))")
        }
        var configuration = try RunConfiguration(json: state.config, source: stateURL.path)
        try state.check(iterations: configuration.training.iterations, source: stateURL)
        // The data a run was started on must still be where it was: a moved folder is an error, never a
        // different folder of the same relative name.
        var stored: [(String, String)] = []
        if let d = configuration.trainData { stored.append(("training data", d.root)) }
        if let d = configuration.valData { stored.append(("validation data", d.root)) }
        if let w = configuration.teacherWeights, configuration.mode == .distill { stored.append(("teacher weights", w)) }
        if let w = configuration.vggWeights, configuration.mode == .distill { stored.append(("VGG weights", w)) }
        for (what, path) in stored where path.hasPrefix("/") && !fm.fileExists(atPath: path) {
            throw RunConfigurationError("\(stateURL.path): the run's \(what) \(path) is gone (moved or deleted?); put it back to resume")
        }
        // The checkpoint lives in <run>/checkpoints/iter-N: the run folder is two levels up.
        let run = checkpoint.deletingLastPathComponent().deletingLastPathComponent()
        if configuration.runDirectory.standardizedFileURL.path != run.standardizedFileURL.path {
            configuration.output = run.path
        }
        return (configuration, checkpoint)
    }
}

// MARK: - Image probing

/// Up-front checks of a dataset's files: every header read, the first pair decoded.
public enum DataProbe {
    /// Reads every image header of `source` (PairedDataset and CleanDataset; other sources only get the first
    /// pair decoded), checks pair sizes and the minimum side, and decodes pair 0 in full.
    ///
    /// - Parameters:
    ///   - role: "training" or "validation", for messages.
    ///   - minimumSide: the smallest allowed width/height (the training crop).
    /// - Throws: `RunConfigurationError` naming the file.
    public static func check(_ source: any PairedImageSource, role: String, minimumSide: Int) throws {
        func size(_ url: URL) throws -> (width: Int, height: Int) {
            do { return try ImageHeader.size(of: url) } catch {
                throw RunConfigurationError("\(role) data: \(ErrorText.describe(error))")
            }
        }
        func checkSide(_ url: URL, _ s: (width: Int, height: Int)) throws {
            if s.width < minimumSide || s.height < minimumSide {
                throw RunConfigurationError(role == "training"
                    ? "training data: \(url.path) is \(s.width)x\(s.height), smaller than the \(minimumSide)x\(minimumSide) crop (\(OptionKey.trainingData(.patchSize)))"
                    : "\(role) data: \(url.path) is \(s.width)x\(s.height), smaller than the \(minimumSide)x\(minimumSide) SSIM window")
            }
        }
        if let paired = source as? PairedDataset {
            var sizes: [URL: (width: Int, height: Int)] = [:]
            for entry in paired.entries {
                let a = try sizes[entry.input] ?? size(entry.input)
                let b = try sizes[entry.target] ?? size(entry.target)
                sizes[entry.input] = a; sizes[entry.target] = b
                if a != b {
                    throw RunConfigurationError("\(role) data: pair \(entry.input.path) (\(a.width)x\(a.height)) and \(entry.target.path) (\(b.width)x\(b.height)) differ in size")
                }
                try checkSide(entry.input, a)
            }
        } else if let clean = source as? CleanDataset {
            for file in clean.files { try checkSide(file, try size(file)) }
        }
        var rng = SKDRandom(seed: 0)
        do { _ = try source.pair(at: 0, using: &rng) } catch {
            throw RunConfigurationError("\(role) data: \(ErrorText.describe(error))")
        }
    }
}
