// The options of a training or distillation run, in BasicSR's shape (datasets / network / train / val, plus a
// distill section), read from YAML, overridable key by key, stored as JSON in every checkpoint, and checked in full
// before any work starts: every problem a run could hit in its first minutes (a missing folder, unpaired files, an
// unreadable image, an unknown preset, a teacher of another family, a crop larger than an image) is reported
// first, in one line naming the file or value.
//
// Resolution order: built-in defaults < options file < `--set key.path=value` < explicit command-line flags.

import Foundation
import SKDImage
import SKDModels
import SKDNN
import SKDTensor
import Yams

/// A problem with a run's options or inputs, found before any work starts. The message is one line naming the
/// offending file, key or value.
public struct RunConfigurationError: Error, CustomStringConvertible, LocalizedError, Equatable {
    /// The one-line explanation.
    public let message: String

    /// - Parameter message: the explanation; line breaks are folded into spaces.
    public init(_ message: String) {
        self.message = message.split(whereSeparator: \.isNewline).joined(separator: " ")
    }

    /// The message.
    public var description: String { message }
    /// The message, for `localizedDescription`.
    public var errorDescription: String? { message }
}

/// Errors as one line for the user: Foundation's file errors (which print as `Error Domain=NSCocoaErrorDomain
/// Code=... UserInfo={...}`) become "<path>: <reason>"; other errors their description.
public enum ErrorText {
    /// One line describing `error`.
    public static func describe(_ error: Error) -> String {
        if let e = error as? RunConfigurationError { return e.message }
        if let e = error as? DecodingError { return ModelSpec.describe(e) }
        let ns = error as NSError
        if ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain {
            let path = (ns.userInfo[NSFilePathErrorKey] as? String) ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path
            return [path, reason(ns)].compactMap { $0 }.joined(separator: ": ")
        }
        return oneLine(String(describing: error))
    }

    static func oneLine(_ text: String) -> String { text.split(whereSeparator: \.isNewline).joined(separator: " ") }

    static func reason(_ ns: NSError) -> String {
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code))).lowercased()
        }
        if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))).lowercased() }
        switch CocoaError.Code(rawValue: ns.code) {
        case .fileNoSuchFile, .fileReadNoSuchFile: return "no such file or folder"
        case .fileReadNoPermission, .fileWriteNoPermission: return "permission denied"
        case .fileWriteFileExists: return "a file of that name is in the way"
        case .fileWriteOutOfSpace: return "no space left on the device"
        case .fileWriteVolumeReadOnly: return "read-only file system"
        case .fileReadCorruptFile: return "the file is corrupt"
        case .fileReadInapplicableStringEncoding: return "not UTF-8 text"
        case .fileReadTooLarge: return "the file is too large"
        default:
            let text = ns.localizedDescription
            return text.contains("NSCocoaErrorDomain") || text.isEmpty ? "file operation failed (code \(ns.code))" : oneLine(text)
        }
    }
}

/// Whether a run trains a network alone (`skd train`, L1 to the ground truth) or distils a teacher into it.
public enum RunMode: String, Sendable, CaseIterable {
    /// One network trained with L1; distillation options are ignored.
    case train
    /// A student trained by a frozen teacher with a `DistillationMethod`.
    case distill
}

/// Where the contrastive loss's feature space φ comes from.
public enum ContrastiveFeatureSource: String, Sendable, CaseIterable {
    /// VGG-19 when `vgg_weights` is given, the teacher's encoder otherwise.
    case auto
    /// VGG-19 relu1_1…relu5_1 from a converted torchvision weights file (`vgg_weights`).
    case vgg19
    /// The frozen teacher's first three default taps (encoder levels 1–3), for users without VGG weights.
    case teacher
}

/// One dataset of a run.
public struct DatasetConfiguration: Equatable, Sendable {
    /// The folder: paired images (`input/`+`target/`, `blur/`+`sharp/`, SIDD) or, with a `degradation`, clean images.
    public var root: String
    /// A synthetic degradation applied to clean images (`noise:25`, `noise:0-50`, `rain`, `motion-blur:5-21`,
    /// chained with `+`); `nil` for a paired folder. See `DegradationSpec`.
    public var degradation: String?
    /// The paired layout; `nil` detects it.
    public var layout: PairedDataset.Layout?
    /// Clean folders: also list images in sub-folders.
    public var recursive = false

    /// A dataset rooted at `root`.
    public init(root: String, degradation: String? = nil, layout: PairedDataset.Layout? = nil, recursive: Bool = false) {
        self.root = root; self.degradation = degradation; self.layout = layout; self.recursive = recursive
    }

    /// The dataset object (lists and matches files; no image is decoded).
    ///
    /// - Throws: `RunConfigurationError` naming the folder, the unpaired files or the bad degradation.
    public func makeSource(role: String) throws -> any PairedImageSource {
        let url = URL(fileURLWithPath: root)
        do {
            if let degradation, let chain = try DegradationSpec.parse(degradation) {
                return try CleanDataset(folder: url, degradation: chain, recursive: recursive)
            }
            return try PairedDataset(root: url, layout: layout)
        } catch let error as RunConfigurationError {
            throw RunConfigurationError("\(role) data: \(error.message)")
        } catch {
            throw RunConfigurationError("\(role) data: \(ErrorText.describe(error))")
        }
    }
}

/// The synthetic degradations by name.
///
/// Grammar: steps joined by `+`, each `noise:σ` or `noise:σ1-σ2` (Gaussian noise, σ on the 0–255 scale),
/// `rain` (synthetic streaks with the default ranges), `motion-blur` or `motion-blur:L1-L2` (length in pixels);
/// `none` means no degradation.
public enum DegradationSpec {
    /// The degradation `text` names, or `nil` for `none`.
    ///
    /// - Throws: `RunConfigurationError` naming the step it does not understand.
    public static func parse(_ text: String) throws -> (any Degradation)? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        if trimmed == "none" || trimmed.isEmpty { return nil }
        var steps: [any Degradation] = []
        for step in trimmed.split(separator: "+").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            let parts = step.split(separator: ":", maxSplits: 1).map(String.init)
            let name = parts[0], argument = parts.count > 1 ? parts[1] : nil
            func range(_ text: String) throws -> ClosedRange<Float> {
                let bounds = text.split(separator: "-", omittingEmptySubsequences: false).map { Float($0.trimmingCharacters(in: .whitespaces)) }
                guard (1...2).contains(bounds.count), bounds.allSatisfy({ $0 != nil && $0! >= 0 }),
                      bounds.first!! <= bounds.last!! else {
                    throw RunConfigurationError("degradation '\(text)': expected a number or a range like 0-50 in '\(step)'")
                }
                return bounds.first!!...bounds.last!!
            }
            switch name {
            case "noise", "gaussian", "gaussian-noise":
                guard let argument else { throw RunConfigurationError("degradation '\(step)': give σ, e.g. noise:25 or noise:0-50") }
                steps.append(GaussianNoise(sigma: try range(argument)))
            case "rain":
                guard argument == nil else { throw RunConfigurationError("degradation '\(step)': rain takes no argument") }
                steps.append(RainStreaks())
            case "motion-blur", "blur":
                let lengths = try argument.map(range) ?? 5...21
                guard lengths.lowerBound >= 1 else { throw RunConfigurationError("degradation '\(step)': blur length must be at least 1") }
                steps.append(MotionBlur(length: lengths))
            default:
                throw RunConfigurationError("unknown degradation '\(name)' in '\(text)'; known: noise:σ, rain, motion-blur[:L1-L2], none, joined with +")
            }
        }
        return steps.count == 1 ? steps[0] : DegradationChain(steps)
    }
}

/// Every option of a run. `dictionary()` / `init(dictionary:source:mode:)` convert to and from the options tree
/// (the YAML schema, also stored as JSON in checkpoints).
public struct RunConfiguration: Equatable {
    /// Training alone or distillation.
    public var mode: RunMode
    /// The run's name; the default output folder is `runs/<name>`.
    public var name: String
    /// The run folder (logs, checkpoints, samples, plot); `nil`: `runs/<name>`.
    public var output: String?
    /// The run seed: initial weights, batches, crops, augmentations, synthetic degradations.
    public var seed: UInt64 = 0
    /// The training data.
    public var trainData: DatasetConfiguration?
    /// The validation data (optional).
    public var valData: DatasetConfiguration?
    /// The network trained: the student of a distillation, or the model of `skd train`.
    public var student: ModelSpec?
    /// The teacher's weights: a `.safetensors` file, a checkpoint folder or a run folder.
    public var teacherWeights: String?
    /// The teacher's architecture, needed only when its weights file names none.
    public var teacherNetwork: ModelSpec?
    /// torchvision VGG-19 weights converted to safetensors, for the contrastive loss.
    public var vggWeights: String?
    /// Where φ of the contrastive loss comes from.
    public var contrastiveFeatures: ContrastiveFeatureSource = .auto
    /// The student's initial weights (BasicSR's `pretrain_network_g`): a `.safetensors` file, checkpoint or run folder.
    public var initWeights: String? = nil
    /// Whether `initWeights` must fit the student exactly (missing, unexpected or mis-shaped keys are errors).
    public var initStrict = true
    /// Start the student from the teacher's tensors, each sliced to the student's shape (`StudentInitialization`).
    public var initFromTeacher = false
    /// Schedule, batch, crop and bookkeeping.
    public var training = TrainingOptions()
    /// The method and its weights.
    public var distillation = DistillationOptions()

    /// The defaults of `mode` (no data, no network).
    public init(mode: RunMode) {
        self.mode = mode
        name = mode == .train ? "train" : "distill"
        if mode == .train { distillation.method = .none }
    }

    /// The run folder.
    public var runDirectory: URL { URL(fileURLWithPath: output ?? "runs/\(name)") }

    // MARK: - Reading

    /// Reads a YAML options file.
    ///
    /// - Parameter overrides: `key.path=value` assignments applied to the file's tree before it is read (values
    ///   are YAML: `8`, `2e-4`, `[1, 1, 2, 2]`, `restormer-s`).
    /// - Throws: `RunConfigurationError` naming the file and key.
    public static func load(yaml url: URL, mode: RunMode, overrides: [String] = []) throws -> RunConfiguration {
        var tree = try optionsTree(yaml: url)
        try apply(overrides: overrides, to: &tree)
        return try RunConfiguration(dictionary: tree, source: url.path, mode: mode)
    }

    /// The options tree of a YAML file (an empty file gives an empty tree).
    ///
    /// - Throws: `RunConfigurationError` naming the file when it is unreadable, not YAML, or not a mapping.
    public static func optionsTree(yaml url: URL) throws -> [String: Any] {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw RunConfigurationError("\(url.path): cannot read the options file (\(FileManager.default.fileExists(atPath: url.path) ? "not UTF-8 text" : "no such file"))")
        }
        let composed: Node?
        do { composed = try Yams.compose(yaml: text) } catch {
            throw RunConfigurationError("\(url.path): not valid YAML: \(error)")
        }
        guard let composed else { return [:] }
        // Yams keeps the last of duplicate keys; a repeated option is almost always a mistake, so it is an error.
        try checkDuplicateKeys(composed, path: "", file: url)
        let loaded = try plainValue(composed, file: url)
        if loaded is NSNull { return [:] }
        guard let mapping = OptionTree.normalized(loaded) as? [String: Any] else {
            throw RunConfigurationError("\(url.path): the options file must be a mapping of sections (datasets, network, train, val, distill)")
        }
        return mapping
    }

    /// A composed YAML node as plain values: mappings with string keys, arrays, scalars as Yams resolves them. Not
    /// Yams' own mapping constructor, which traps on a key that is not a plain scalar (found by `make fuzz`).
    ///
    /// - Throws: `RunConfigurationError` naming the file and line of a key that is not a plain name.
    static func plainValue(_ node: Node, file: URL) throws -> Any {
        if let mapping = node.mapping {
            var out: [String: Any] = [:]
            for (key, value) in mapping {
                guard key.scalar != nil, let name = key.string else {
                    let line = key.mark.map { " (line \($0.line))" } ?? ""
                    throw RunConfigurationError("\(file.path): a key\(line) is not a plain name; option keys are words such as datasets or batch_size")
                }
                out[name] = try plainValue(value, file: file)
            }
            return out
        }
        if let sequence = node.sequence { return try sequence.map { try plainValue($0, file: file) } }
        return node.any
    }

    /// Throws for the first mapping of `node` that holds a key twice, naming the file, line and key path.
    static func checkDuplicateKeys(_ node: Node, path: String, file: URL) throws {
        if let mapping = node.mapping {
            var seen = Set<String>()
            for (key, value) in mapping {
                let name = key.string ?? "\(key)"
                let full = path.isEmpty ? name : "\(path).\(name)"
                if !seen.insert(name).inserted {
                    let line = key.mark.map { " (line \($0.line))" } ?? ""
                    throw RunConfigurationError("\(file.path): \(full) is given twice\(line); keep one")
                }
                try checkDuplicateKeys(value, path: full, file: file)
            }
        } else if let sequence = node.sequence {
            for (i, item) in sequence.enumerated() { try checkDuplicateKeys(item, path: "\(path)[\(i)]", file: file) }
        }
    }

    /// Sets `value` at a dotted key path of `tree`, creating sections as needed. A network given by its preset
    /// name (`student: restormer-s`) becomes `{preset: restormer-s}` when a key below it is set.
    ///
    /// - Throws: `RunConfigurationError` when a key on the path holds a value that is not a section.
    public static func assign(_ value: Any, at keyPath: String, in tree: inout [String: Any]) throws {
        let path = keyPath.split(separator: ".").map(String.init)
        guard !path.isEmpty else { throw RunConfigurationError("empty option key in '\(keyPath)'") }
        func set(_ node: inout [String: Any], _ keys: ArraySlice<String>) throws {
            let key = keys.first!
            if keys.count == 1 { node[key] = value; return }
            var child: [String: Any]
            switch node[key] {
            case nil, is NSNull: child = [:]
            case let section as [String: Any]: child = section
            case let preset as String: child = ["preset": preset]
            default: throw RunConfigurationError("option '\(keyPath)': '\(key)' holds a value, not a section")
            }
            try set(&child, keys.dropFirst())
            node[key] = child
        }
        try set(&tree, path[...])
    }

    /// Applies `key.path=value` assignments (`--set`); values are read as YAML (`8`, `2e-4`, `[1, 1, 2, 2]`, text).
    ///
    /// - Throws: `RunConfigurationError` for an assignment without `=` or a path through a value.
    public static func apply(overrides: [String], to tree: inout [String: Any]) throws {
        for assignment in overrides {
            guard let eq = assignment.firstIndex(of: "="), eq != assignment.startIndex else {
                throw RunConfigurationError("--set \(assignment): expected key.path=value")
            }
            let text = String(assignment[assignment.index(after: eq)...])
            var value: Any = text
            // `null` (as the guide's files write it) means the option's default.
            if let node = try? Yams.compose(yaml: text) {
                let parsed = try plainValue(node, file: URL(fileURLWithPath: "--set \(assignment)"))
                value = parsed is NSNull ? NSNull() : OptionTree.normalized(parsed)
            }
            try assign(value, at: String(assignment[..<eq]), in: &tree)
        }
    }

    /// The defaults with `--set` assignments applied (no options file).
    public static func defaults(mode: RunMode, overrides: [String]) throws -> RunConfiguration {
        var tree: [String: Any] = [:]
        try apply(overrides: overrides, to: &tree)
        return try RunConfiguration(dictionary: tree, source: "--set", mode: mode)
    }

    /// Reads an options tree (decoded YAML or JSON).
    ///
    /// - Parameters:
    ///   - source: names the tree in error messages (the file's path).
    /// - Throws: `RunConfigurationError` for an unknown key, a value of the wrong type, an unknown preset, method
    ///   or layout.
    public init(dictionary tree: [String: Any], source: String, mode: RunMode) throws {
        self.init(mode: mode)
        let r = OptionTree(source: source)
        try r.checkKeys(tree, at: "", allowed: ["mode", "name", "output", "seed", "datasets", "network", "train", "val", "distill"])
        if let n = try r.string(tree["name"], at: "name") { name = n }
        output = try r.string(tree["output"], at: "output")
        if let s = try r.int(tree["seed"], at: "seed") {
            guard s >= 0 else { throw r.error("seed", "must be ≥ 0, got \(s)") }
            seed = UInt64(s)
        }
        training.seed = seed

        if let datasets = try r.mapping(tree["datasets"], at: "datasets") {
            try r.checkKeys(datasets, at: "datasets", allowed: ["train", "val"])
            if let train = try r.mapping(datasets["train"], at: "datasets.train") {
                try r.checkKeys(train, at: "datasets.train", allowed: ["root", "degradation", "layout", "recursive", "patch_size", "batch_size", "workers"])
                trainData = try r.dataset(train, at: "datasets.train")
                if let v = try r.int(train["patch_size"], at: "datasets.train.patch_size") { training.patchSize = v }
                if let v = try r.int(train["batch_size"], at: "datasets.train.batch_size") { training.batchSize = v }
                if let v = try r.int(train["workers"], at: "datasets.train.workers") { training.workers = v }
            }
            if let val = try r.mapping(datasets["val"], at: "datasets.val") {
                try r.checkKeys(val, at: "datasets.val", allowed: ["root", "degradation", "layout", "recursive"])
                valData = try r.dataset(val, at: "datasets.val")
            }
        }

        if let network = try r.mapping(tree["network"], at: "network") {
            try r.checkKeys(network, at: "network", allowed: ["student", "model", "teacher", "teacher_weights", "vgg_weights",
                                                              "init_weights", "init_strict", "init_from_teacher"])
            initWeights = try r.string(network["init_weights"], at: "network.init_weights")
            if let v = try r.bool(network["init_strict"], at: "network.init_strict") { initStrict = v }
            if let v = try r.bool(network["init_from_teacher"], at: "network.init_from_teacher") { initFromTeacher = v }
            if network["student"] != nil && network["model"] != nil {
                throw r.error("network", "give either 'student' or 'model' (the same network), not both")
            }
            student = try r.modelSpec(network["student"] ?? network["model"], at: network["student"] != nil ? "network.student" : "network.model")
            teacherNetwork = try r.modelSpec(network["teacher"], at: "network.teacher")
            teacherWeights = try r.string(network["teacher_weights"], at: "network.teacher_weights")
            vggWeights = try r.string(network["vgg_weights"], at: "network.vgg_weights")
        }

        if let train = try r.mapping(tree["train"], at: "train") {
            try r.checkKeys(train, at: "train", allowed: ["iterations", "lr", "min_lr", "weight_decay", "log_every", "checkpoint_every", "budget"])
            if let v = try r.string(train["budget"], at: "train.budget"), !["none", "null", ""].contains(v.lowercased()) {
                do { training.budget = try TrainingBudget(parsing: v) } catch let e as RunConfigurationError { throw r.error("train.budget", e.message) }
            }
            if let v = try r.int(train["iterations"], at: "train.iterations") { training.iterations = v }
            if let v = try r.float(train["lr"], at: "train.lr") { training.learningRate = v }
            if let v = try r.float(train["min_lr"], at: "train.min_lr") { training.minLearningRate = v }
            if let v = try r.float(train["weight_decay"], at: "train.weight_decay") { training.weightDecay = v }
            if let v = try r.int(train["log_every"], at: "train.log_every") { training.logEvery = v }
            if let v = try r.int(train["checkpoint_every"], at: "train.checkpoint_every") { training.checkpointEvery = v }
        }

        if let val = try r.mapping(tree["val"], at: "val") {
            try r.checkKeys(val, at: "val", allowed: ["every", "images", "samples"])
            if let v = try r.int(val["every"], at: "val.every") { training.validateEvery = v }
            if let v = try r.int(val["images"], at: "val.images") { training.validationImages = v }
            if let v = try r.int(val["samples"], at: "val.samples") { training.samples = v }
        }

        if let d = try r.mapping(tree["distill"], at: "distill") {
            try r.checkKeys(d, at: "distill", allowed: ["method", "taps", "sigma", "alpha1", "alpha2", "alpha3", "channel_branch",
                                                         "spatial_branch", "spatial_token_threshold", "spatial_tile_rows", "contrastive",
                                                         "contrastive_form", "contrastive_features", "contrastive_weights", "tau",
                                                         "wave_lambda", "wave_levels", "output_kd_weight", "wave_form", "fitnet_distance"])
            var o = distillation
            if let m = try r.string(d["method"], at: "distill.method") {
                guard let method = DistillationMethod(rawValue: m.lowercased()) else {
                    throw r.error("distill.method", "unknown method '\(m)'; known: \(DistillationMethod.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                o.method = method
            }
            if d["taps"] != nil { o.taps = try r.stringList(d["taps"], at: "distill.taps") }
            if let v = try r.float(d["sigma"], at: "distill.sigma") { o.feature.sigma = v }
            if let v = try r.float(d["alpha1"], at: "distill.alpha1") { o.feature.alpha1 = v }
            if let v = try r.float(d["alpha2"], at: "distill.alpha2") { o.alpha2 = v }
            if let v = try r.float(d["alpha3"], at: "distill.alpha3") { o.alpha3 = v }
            if let v = try r.bool(d["channel_branch"], at: "distill.channel_branch") { o.feature.channelBranch = v }
            if let v = try r.bool(d["spatial_branch"], at: "distill.spatial_branch") { o.feature.spatialBranch = v }
            if d.keys.contains("spatial_token_threshold") {
                o.feature.spatialTokenThreshold = try r.threshold(d["spatial_token_threshold"], at: "distill.spatial_token_threshold")
            }
            if let v = try r.int(d["spatial_tile_rows"], at: "distill.spatial_tile_rows") { o.feature.spatialTileRows = v }
            if let v = try r.bool(d["contrastive"], at: "distill.contrastive") { o.contrastive = v }
            if let v = try r.string(d["contrastive_form"], at: "distill.contrastive_form") {
                guard let form = ContrastiveForm(rawValue: v.lowercased()) else {
                    throw r.error("distill.contrastive_form", "unknown form '\(v)'; known: \(ContrastiveForm.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                o.contrastiveForm = form
            }
            if let v = try r.string(d["contrastive_features"], at: "distill.contrastive_features") {
                guard let source = ContrastiveFeatureSource(rawValue: v.lowercased()) else {
                    throw r.error("distill.contrastive_features", "unknown feature source '\(v)'; known: auto, vgg19, teacher")
                }
                contrastiveFeatures = source
            }
            if d["contrastive_weights"] != nil { o.contrastiveWeights = try r.floatList(d["contrastive_weights"], at: "distill.contrastive_weights") }
            if let v = try r.float(d["tau"], at: "distill.tau") { o.tau = v }
            if let v = try r.float(d["wave_lambda"], at: "distill.wave_lambda") { o.waveLambda = v }
            if let v = try r.int(d["wave_levels"], at: "distill.wave_levels") { o.waveLevels = v }
            if let v = try r.float(d["output_kd_weight"], at: "distill.output_kd_weight") { o.outputKDWeight = v }
            if let v = try r.string(d["wave_form"], at: "distill.wave_form") {
                guard let form = WaveletForm(rawValue: v.lowercased()) else {
                    throw r.error("distill.wave_form", "unknown form '\(v)'; known: \(WaveletForm.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                o.waveForm = form
            }
            if let v = try r.string(d["fitnet_distance"], at: "distill.fitnet_distance") {
                guard let distance = FitNetDistance(rawValue: v.lowercased()) else {
                    throw r.error("distill.fitnet_distance", "unknown distance '\(v)'; known: \(FitNetDistance.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                o.fitnetDistance = distance
            }
            distillation = o
        }
        if mode == .train { distillation.method = .none }
    }

    // MARK: - Writing

    /// The options tree: every option with its resolved value, in the YAML schema (network descriptions as
    /// `{"arch": ..., official arguments}`).
    public func dictionary() -> [String: Any] {
        func dataset(_ d: DatasetConfiguration) -> [String: Any] {
            var out: [String: Any] = ["root": d.root, "recursive": d.recursive]
            if let g = d.degradation { out["degradation"] = g }
            if let l = d.layout { out["layout"] = l.optionName }
            return out
        }
        var datasets: [String: Any] = [:]
        var train: [String: Any] = ["patch_size": training.patchSize, "batch_size": training.batchSize, "workers": training.workers]
        if let t = trainData { train.merge(dataset(t)) { $1 } }
        datasets["train"] = train
        if let v = valData { datasets["val"] = dataset(v) }

        var network: [String: Any] = [:]
        if let s = student { network["student"] = (try? s.dictionary()) ?? [:] }
        if let t = teacherNetwork { network["teacher"] = (try? t.dictionary()) ?? [:] }
        if let w = teacherWeights { network["teacher_weights"] = w }
        if let w = vggWeights { network["vgg_weights"] = w }
        if let w = initWeights { network["init_weights"] = w; network["init_strict"] = initStrict }
        if initFromTeacher { network["init_from_teacher"] = true }

        let o = distillation
        var distill: [String: Any] = [
            "method": o.method.rawValue, "sigma": Double(o.feature.sigma), "alpha1": Double(o.feature.alpha1),
            "alpha2": Double(o.alpha2), "alpha3": Double(o.alpha3), "channel_branch": o.feature.channelBranch,
            "spatial_branch": o.feature.spatialBranch, "spatial_token_threshold": o.feature.spatialTokenThreshold.map { $0 as Any } ?? "all",
            "contrastive": o.contrastive, "contrastive_form": o.contrastiveForm.rawValue,
            "contrastive_features": contrastiveFeatures.rawValue, "tau": Double(o.tau), "wave_lambda": Double(o.waveLambda),
            "wave_levels": o.waveLevels, "output_kd_weight": Double(o.outputKDWeight),
            "wave_form": o.waveForm.rawValue, "fitnet_distance": o.fitnetDistance.rawValue,
        ]
        if let taps = o.taps { distill["taps"] = taps }
        if let w = o.contrastiveWeights { distill["contrastive_weights"] = w.map(Double.init) }
        if let rows = o.feature.spatialTileRows { distill["spatial_tile_rows"] = rows }

        var tree: [String: Any] = [
            "mode": mode.rawValue, "name": name, "seed": Int(seed), "datasets": datasets, "network": network,
            "train": (["iterations": training.iterations, "lr": Double(training.learningRate), "min_lr": Double(training.minLearningRate),
                       "weight_decay": Double(training.weightDecay), "log_every": training.logEvery,
                       "checkpoint_every": training.checkpointEvery] as [String: Any])
                .merging(training.budget.map { ["budget": $0.description] as [String: Any] } ?? [:]) { $1 },
            "val": ["every": training.validateEvery, "images": training.validationImages, "samples": training.samples] as [String: Any],
        ]
        if mode == .distill { tree["distill"] = distill }
        if let output { tree["output"] = output }
        // Network descriptions come through JSONSerialization as NSNumbers, which would pass for Bools.
        return OptionTree.normalized(tree) as? [String: Any] ?? tree
    }

    /// The options tree as compact JSON with sorted keys (what checkpoints and weight files store).
    public func jsonString() -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: dictionary(), options: [.sortedKeys]) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    /// The options tree as YAML, sections in the order of the schema (a file `skd train --config` reads back).
    public func yamlString() -> String { OptionTree.yaml(dictionary()) }

    /// Reads the options stored in a checkpoint (`state.json`'s `config`) or a weights file's `config` metadata.
    ///
    /// - Parameter source: names the JSON in error messages.
    public init(json: String, source: String) throws {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)), let tree = OptionTree.normalized(object) as? [String: Any] else {
            throw RunConfigurationError("\(source): the stored configuration is not a JSON object")
        }
        let modeName = tree["mode"] as? String ?? "distill"
        guard let mode = RunMode(rawValue: modeName) else { throw RunConfigurationError("\(source): unknown mode '\(modeName)'") }
        try self.init(dictionary: tree, source: source, mode: mode)
    }
}

// MARK: - Preparation: every check before any work

/// Weights with the architecture they belong to.
public struct ModelWeights {
    /// The architecture.
    public let spec: ModelSpec
    /// Parameter tensors by state-dict name.
    public let tensors: [String: Tensor]
    /// The file the weights were read from.
    public let file: URL

    /// A network built from `spec` with these weights loaded, in eval mode.
    ///
    /// - Throws: `RunConfigurationError` naming the file and the missing or mis-shaped parameters.
    public func makeModel() throws -> any TappedModel & ModelStatistics {
        let model = spec.makeModel()
        do {
            let state = model.stateDict()
            let missing = state.keys.filter { tensors[$0] == nil }.sorted()
            if !missing.isEmpty {
                throw RunConfigurationError("\(file.path): \(missing.count) parameters of the \(spec.architecture) missing (\(missing.prefix(4).joined(separator: ", "))\(missing.count > 4 ? ", …" : "")); does the architecture match the weights?")
            }
            try model.load(tensors.filter { state[$0.key] != nil }, strict: true)
        } catch let error as RunConfigurationError { throw error } catch {
            throw RunConfigurationError("\(file.path): the weights do not fit the \(spec.architecture) described: \(error)")
        }
        model.eval()
        return model
    }

    /// Reads trained weights: a `.safetensors` file (its `config` metadata names the architecture: a model
    /// description `{"arch": ...}` or a run's options), a checkpoint folder (`state.json` + `model.safetensors`),
    /// or a run folder (`best.safetensors`, else the latest checkpoint).
    ///
    /// - Parameters:
    ///   - architecture: used when the file names no architecture (e.g. converted official weights); when the file
    ///     names one, the two must agree unless `onlyAsFallback`.
    ///   - onlyAsFallback: `architecture` is only the default for files that name none (initial weights, which may
    ///     come from another configuration of the family and are loaded by name and shape).
    /// - Throws: `RunConfigurationError` naming the path.
    public static func load(_ url: URL, architecture: ModelSpec? = nil, onlyAsFallback: Bool = false) throws -> ModelWeights {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw RunConfigurationError("\(url.path): no such weights file or folder")
        }
        if isDirectory.boolValue {
            let best = url.appendingPathComponent("best.safetensors")
            if fm.fileExists(atPath: url.appendingPathComponent("state.json").path) {
                return try loadCheckpoint(url, architecture: architecture, onlyAsFallback: onlyAsFallback)
            }
            if fm.fileExists(atPath: best.path) { return try load(best, architecture: architecture, onlyAsFallback: onlyAsFallback) }
            if let latest = CheckpointStore(runDirectory: url).latest() {
                return try loadCheckpoint(latest, architecture: architecture, onlyAsFallback: onlyAsFallback)
            }
            throw RunConfigurationError("\(url.path): a folder without weights (expected best.safetensors, checkpoints/latest or a checkpoint's state.json)")
        }
        let file: SafeTensorsFile
        do { file = try SafeTensors.read(url) } catch { throw RunConfigurationError("\(error)") }
        var spec = architecture
        if let config = file.metadata["config"], let named = try architectureDescribed(by: config, source: url.path) {
            if !onlyAsFallback { try checkAgreement(named, given: architecture, file: url) }
            spec = named
        }
        guard let spec else {
            throw RunConfigurationError("\(url.path): the file names no architecture (no 'config' metadata); give it with --teacher-preset or network.teacher")
        }
        let tensors = file.tensors.filter { !$0.key.hasPrefix("projectors.") }
        try checkFinite(tensors, file: url)
        return ModelWeights(spec: spec, tensors: tensors, file: url)
    }

    static func loadCheckpoint(_ folder: URL, architecture: ModelSpec?, onlyAsFallback: Bool = false) throws -> ModelWeights {
        let stateURL = folder.appendingPathComponent("state.json")
        let state: CheckpointState
        do { state = try JSONDecoder().decode(CheckpointState.self, from: Data(contentsOf: stateURL)) } catch {
            throw RunConfigurationError("\(stateURL.path): not a SwiftSKD checkpoint state (\(ErrorText.describe(error)))")
        }
        let named = try architectureDescribed(by: state.config, source: stateURL.path)
        if let named, !onlyAsFallback { try checkAgreement(named, given: architecture, file: stateURL) }
        guard let spec = named ?? architecture else { throw RunConfigurationError("\(stateURL.path): the stored configuration names no network") }
        let modelURL = folder.appendingPathComponent("model.safetensors")
        let file: SafeTensorsFile
        do { file = try SafeTensors.read(modelURL) } catch { throw RunConfigurationError("\(error)") }
        let tensors = file.tensors.filter { !$0.key.hasPrefix("projectors.") }
        try checkFinite(tensors, file: modelURL)
        return ModelWeights(spec: spec, tensors: tensors, file: modelURL)
    }

    /// An architecture given on the command line (`--preset`, network.teacher) must be the one the file names.
    static func checkAgreement(_ named: ModelSpec, given: ModelSpec?, file: URL) throws {
        guard let given, given != named else { return }
        let what = given.architecture == named.architecture ? "a different \(named.architecture) configuration" : "a \(given.architecture)"
        throw RunConfigurationError("\(file.path) holds a \(named.architecture) (\(named.jsonString())), but the preset given describes \(what); drop the preset (--preset, --teacher-preset, network.teacher), the file names its architecture")
    }

    /// Weights holding NaN or ±∞ would restore black images and report meaningless metrics with exit 0.
    static func checkFinite(_ tensors: [String: Tensor], file: URL) throws {
        for name in tensors.keys.sorted() {
            let t = tensors[name]!
            let values = UnsafeBufferPointer(start: t.pointer, count: t.count)
            if let index = values.firstIndex(where: { !$0.isFinite }) {
                let bad = values[index].isNaN ? "NaN" : "\(values[index])"
                let count = values.lazy.filter { !$0.isFinite }.count
                throw RunConfigurationError("\(file.path): tensor '\(name)' holds \(count) non-finite value(s) (\(bad) at element \(index)); the weights are unusable")
            }
        }
    }

    /// The architecture in a `config` JSON: `{"arch": ...}` itself, or the `network.student` of a run's options.
    static func architectureDescribed(by json: String, source: String) throws -> ModelSpec? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return nil }
        do {
            if object["arch"] != nil || object["preset"] != nil { return try ModelSpec(dictionary: object) }
            if let network = object["network"] as? [String: Any], let student = network["student"] as? [String: Any] {
                return try ModelSpec(dictionary: student)
            }
        } catch {
            throw RunConfigurationError("\(source): its config names an invalid network: \(ErrorText.describe(error))")
        }
        return nil
    }
}

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
        try positive(t.iterations, "train.iterations")
        try positive(t.batchSize, "datasets.train.batch_size")
        try positive(t.patchSize, "datasets.train.patch_size")
        try positive(t.workers, "datasets.train.workers")
        try positive(t.logEvery, "train.log_every")
        guard t.workers <= 256 else { throw RunConfigurationError("datasets.train.workers must lie in 1...256, got \(t.workers)") }
        guard t.patchSize <= 1 << 16 else { throw RunConfigurationError("datasets.train.patch_size must lie in 1...65536, got \(t.patchSize)") }
        guard t.learningRate > 0, t.learningRate.isFinite else { throw RunConfigurationError("train.lr must be positive, got \(t.learningRate)") }
        guard t.weightDecay >= 0, t.weightDecay.isFinite else { throw RunConfigurationError("train.weight_decay must be a number ≥ 0, got \(t.weightDecay)") }
        guard t.minLearningRate >= 0, t.minLearningRate <= t.learningRate else {
            throw RunConfigurationError("train.min_lr must lie in 0...lr (\(t.learningRate)), got \(t.minLearningRate)")
        }
        guard t.validateEvery >= 0, t.checkpointEvery >= 0, t.validationImages >= 0, t.samples >= 0 else {
            throw RunConfigurationError("val.every, val.images, val.samples and train.checkpoint_every must be ≥ 0")
        }
        let o = distillation
        guard o.feature.sigma > 0 else { throw RunConfigurationError("distill.sigma must be positive, got \(o.feature.sigma)") }
        guard o.tau > 0 else { throw RunConfigurationError("distill.tau must be positive, got \(o.tau)") }
        guard o.waveLevels > 0, o.waveLevels <= 16 else { throw RunConfigurationError("distill.wave_levels must lie in 1...16, got \(o.waveLevels)") }
        for (key, value) in [("distill.sigma", o.feature.sigma), ("distill.tau", o.tau), ("distill.alpha1", o.feature.alpha1),
                             ("distill.alpha2", o.alpha2), ("distill.alpha3", o.alpha3), ("distill.wave_lambda", o.waveLambda),
                             ("distill.output_kd_weight", o.outputKDWeight)] + (o.contrastiveWeights ?? []).enumerated().map({ ("distill.contrastive_weights[\($0.offset)]", $0.element) }) {
            guard value.isFinite, value >= 0 else { throw RunConfigurationError("\(key) must be a number ≥ 0, got \(value)") }
        }
        if let rows = o.feature.spatialTileRows, rows <= 0 { throw RunConfigurationError("distill.spatial_tile_rows must be positive, got \(rows)") }

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
                ? "no network to train: give --model PRESET or network.model in the options file (presets: \(ModelSpec.presetNames.joined(separator: ", ")))"
                : "no student network: give --student PRESET or network.student in the options file (presets: \(ModelSpec.presetNames.joined(separator: ", ")))")
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
                throw RunConfigurationError("teacher \(path) holds a \(weights.spec.architecture), but network.teacher says \(declared.architecture)")
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
            throw RunConfigurationError("datasets.train.batch_size \(t.batchSize) of \(t.patchSize)x\(t.patchSize) crops needs about \(gb(stepBytes)) per training step, more than this machine's \(gb(memory)); lower the batch or patch size")
        }
        ParameterInit.seed(seed)
        let studentModel = studentSpec.makeModel()
        var initialization: String? = nil
        if initWeights != nil && initFromTeacher {
            throw RunConfigurationError("give either network.init_weights (--init-weights) or network.init_from_teacher (--init-from-teacher), not both")
        }
        if let path = initWeights {
            let weights = try ModelWeights.load(URL(fileURLWithPath: path), architecture: studentSpec, onlyAsFallback: true)
            initialization = try StudentInitialization.load(weights.tensors, into: studentModel, strict: initStrict, source: weights.file.path)
        }
        if initFromTeacher {
            guard let path = teacherWeights else {
                throw RunConfigurationError("network.init_from_teacher (--init-from-teacher) needs the teacher's weights: give --teacher WEIGHTS")
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
            throw RunConfigurationError("datasets.train.patch_size \(t.patchSize) is not a multiple of \(multiple), which the \(studentSpec.architecture) needs")
        }
        if method == .wave && t.patchSize % (1 << o.waveLevels) != 0 {
            throw RunConfigurationError("datasets.train.patch_size \(t.patchSize) is not divisible by 2^\(o.waveLevels) for distill.wave_levels \(o.waveLevels)")
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
            guard !taps.isEmpty else { throw RunConfigurationError("distill.taps is empty") }
            for tap in taps where !known.contains(tap) || !studentModel.tapNames.contains(tap) {
                throw RunConfigurationError("unknown tap '\(tap)' for method \(method.rawValue) with the \(studentSpec.architecture); known: \(known.joined(separator: ", "))")
            }
            if method == .skd && o.contrastive {
                var source = contrastiveFeatures
                if source == .auto { source = vggWeights == nil ? .teacher : .vgg19 }
                switch source {
                case .vgg19:
                    guard let path = vggWeights else {
                        throw RunConfigurationError("distill.contrastive_features vgg19 needs --vgg-weights (torchvision VGG-19 converted to safetensors; see Docs/user-guide.md)")
                    }
                    extractor = try VGGFeatureExtractor(weights: URL(fileURLWithPath: path))
                case .teacher, .auto:
                    extractor = TeacherEncoderFeatures(teacher: teacher)
                }
                if let weights = o.contrastiveWeights, weights.count != extractor!.defaultWeights.count {
                    throw RunConfigurationError("distill.contrastive_weights has \(weights.count) values for the \(extractor!.defaultWeights.count) layers of \(extractor!.summary)")
                }
            }
        }

        // Data.
        guard let trainData else {
            throw RunConfigurationError("no training data: give --train-data FOLDER or datasets.train.root in the options file")
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
                    ? "training data: \(url.path) is \(s.width)x\(s.height), smaller than the \(minimumSide)x\(minimumSide) crop (datasets.train.patch_size)"
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

// MARK: - The options tree

/// Typed reads from a decoded YAML/JSON tree, with errors naming the source and key path.
struct OptionTree {
    let source: String

    func error(_ path: String, _ why: String) -> RunConfigurationError { RunConfigurationError("\(source): \(path): \(why)") }

    /// Yams mappings (`[AnyHashable: Any]`) as `[String: Any]`, and JSONSerialization's `NSNumber`s as `Bool`,
    /// `Int` or `Double`, recursively: the readers below then see plain Swift values whatever the source.
    static func normalized(_ value: Any) -> Any {
        let type = Swift.type(of: value)
        if type == Int.self || type == Double.self || type == Bool.self || type == String.self { return value }
        if let mapping = value as? [AnyHashable: Any] {
            var out: [String: Any] = [:]
            for (k, v) in mapping { out["\(k.base)"] = normalized(v) }
            return out
        }
        if let list = value as? [Any] { return list.map(normalized) }
        if let number = value as? NSNumber {
            let code = String(cString: number.objCType)
            if code == "c" || code == "B" { return number.boolValue }
            if code != "f" && code != "d" { return number.intValue }
            return number.doubleValue
        }
        return value
    }

    func checkKeys(_ mapping: [String: Any], at path: String, allowed: [String]) throws {
        for key in mapping.keys.sorted() where !allowed.contains(key) {
            let full = path.isEmpty ? key : "\(path).\(key)"
            throw error(full, "unknown option; known here: \(allowed.joined(separator: ", "))")
        }
    }

    func mapping(_ value: Any?, at path: String) throws -> [String: Any]? {
        guard let value, !(value is NSNull) else { return nil }
        guard let m = value as? [String: Any] else { throw error(path, "expected a section (a mapping), got \(describe(value))") }
        return m
    }

    func string(_ value: Any?, at path: String) throws -> String? {
        guard let value, !(value is NSNull) else { return nil }
        if let s = value as? String { return s }
        if let i = value as? Int { return String(i) }
        if let d = value as? Double { return String(d) }
        throw error(path, "expected text, got \(describe(value))")
    }

    func int(_ value: Any?, at path: String) throws -> Int? {
        guard let value, !(value is NSNull) else { return nil }
        if value is Bool { throw error(path, "expected an integer, got \(value)") }
        if let i = value as? Int { return i }
        if let d = value as? Double, d.rounded() == d, abs(d) < 1e15 { return Int(d) }
        if let s = value as? String, let i = Int(s.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "_", with: "")) { return i }
        if let s = value as? String, let d = Double(s.trimmingCharacters(in: .whitespaces)), d.rounded() == d, abs(d) < 1e15 { return Int(d) }
        throw error(path, "expected an integer, got \(describe(value))")
    }

    func float(_ value: Any?, at path: String) throws -> Float? {
        guard let value, !(value is NSNull) else { return nil }
        if value is Bool { throw error(path, "expected a number, got \(value)") }
        if let d = value as? Double { return Float(d) }
        if let i = value as? Int { return Float(i) }
        // YAML 1.1 reads `2e-4` (no dot) as text.
        if let s = value as? String, let d = Double(s.trimmingCharacters(in: .whitespaces)) { return Float(d) }
        throw error(path, "expected a number, got \(describe(value))")
    }

    func bool(_ value: Any?, at path: String) throws -> Bool? {
        guard let value, !(value is NSNull) else { return nil }
        if let b = value as? Bool { return b }
        if let s = value as? String {
            switch s.lowercased() {
            case "true", "yes", "on": return true
            case "false", "no", "off": return false
            default: break
            }
        }
        throw error(path, "expected true or false, got \(describe(value))")
    }

    func stringList(_ value: Any?, at path: String) throws -> [String]? {
        guard let value, !(value is NSNull) else { return nil }
        if let s = value as? String { return s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
        guard let list = value as? [Any] else { throw error(path, "expected a list, got \(describe(value))") }
        return try list.enumerated().map { try string($0.element, at: "\(path)[\($0.offset)]") ?? "" }
    }

    func floatList(_ value: Any?, at path: String) throws -> [Float]? {
        guard let value, !(value is NSNull) else { return nil }
        if let s = value as? String {
            return try s.split(separator: ",").enumerated().map { try float(String($0.element), at: "\(path)[\($0.offset)]")! }
        }
        guard let list = value as? [Any] else { throw error(path, "expected a list of numbers, got \(describe(value))") }
        return try list.enumerated().map { item -> Float in
            guard let v = try float(item.element, at: "\(path)[\(item.offset)]") else { throw error("\(path)[\(item.offset)]", "expected a number") }
            return v
        }
    }

    /// The spatial token threshold: an integer, or `all`/null for every tap.
    func threshold(_ value: Any?, at path: String) throws -> Int? {
        guard let value, !(value is NSNull) else { return nil }
        if let s = value as? String, ["all", "none", "everywhere"].contains(s.lowercased()) { return nil }
        guard let v = try int(value, at: path), v >= 0 else { throw error(path, "expected a token count ≥ 0 or 'all'") }
        return v
    }

    func dataset(_ m: [String: Any], at path: String) throws -> DatasetConfiguration {
        guard let root = try string(m["root"], at: "\(path).root") else { throw error("\(path).root", "missing: the data folder") }
        var d = DatasetConfiguration(root: root)
        d.degradation = try string(m["degradation"], at: "\(path).degradation")
        if let g = d.degradation {
            do { _ = try DegradationSpec.parse(g) } catch let e as RunConfigurationError { throw error("\(path).degradation", e.message) }
        }
        if let l = try string(m["layout"], at: "\(path).layout"), l.lowercased() != "auto" {
            guard let layout = PairedDataset.Layout(optionName: l) else {
                throw error("\(path).layout", "unknown layout '\(l)'; known: auto, input-target, blur-sharp, sidd")
            }
            d.layout = layout
        }
        if let r = try bool(m["recursive"], at: "\(path).recursive") { d.recursive = r }
        return d
    }

    func modelSpec(_ value: Any?, at path: String) throws -> ModelSpec? {
        guard let value, !(value is NSNull) else { return nil }
        do {
            if let name = value as? String { return try ModelSpec.preset(name) }
            guard let m = value as? [String: Any] else { throw error(path, "expected a preset name or a mapping, got \(describe(value))") }
            return try ModelSpec(dictionary: m)
        } catch let e as RunConfigurationError { throw e } catch {
            throw self.error(path, "\(error)")
        }
    }

    func describe(_ value: Any) -> String {
        if let s = value as? String { return "'\(s)'" }
        if value is [Any] { return "a list" }
        if value is [String: Any] { return "a section" }
        return "\(value)"
    }

    // MARK: YAML output

    /// The schema's key order for readable files; other keys follow alphabetically.
    static let keyOrder = ["mode", "name", "output", "seed", "datasets", "train", "val", "root", "degradation", "layout", "recursive",
                           "patch_size", "batch_size", "workers", "network", "student", "teacher", "teacher_weights", "vgg_weights",
                           "arch", "iterations", "lr", "min_lr", "weight_decay", "log_every", "checkpoint_every", "every", "images",
                           "samples", "distill", "method"]

    static func yaml(_ tree: [String: Any], indent: Int = 0) -> String {
        func rank(_ key: String) -> Int { keyOrder.firstIndex(of: key) ?? keyOrder.count }
        // Inside `datasets`, train comes before val; at the top, the `train`/`val` sections follow `network`.
        let keys = tree.keys.sorted { (rank($0), $0) < (rank($1), $1) }
        var out = ""
        let pad = String(repeating: " ", count: indent)
        for key in keys {
            let value = tree[key]!
            if let m = value as? [String: Any] {
                out += m.isEmpty ? "\(pad)\(key): {}\n" : "\(pad)\(key):\n" + yaml(m, indent: indent + 2)
            } else {
                out += "\(pad)\(key): \(scalar(value))\n"
            }
        }
        return out
    }

    static func scalar(_ value: Any) -> String {
        if let list = value as? [Any] { return "[" + list.map(scalar).joined(separator: ", ") + "]" }
        if let b = value as? Bool { return b ? "true" : "false" }
        if let i = value as? Int { return "\(i)" }
        if let d = value as? Double {
            // Always with a dot or exponent-with-dot so YAML 1.1 reads a float back.
            var text = "\(d)"
            if !text.contains(".") && !text.contains("e") { text += ".0" }
            if text.contains("e") && !text.contains(".") { text = text.replacingOccurrences(of: "e", with: ".0e") }
            return text
        }
        if let s = value as? String {
            let plain = s.range(of: "^[A-Za-z0-9_./+-][A-Za-z0-9_./+: -]*$", options: .regularExpression) != nil
                && !["true", "false", "yes", "no", "on", "off", "null", "~"].contains(s.lowercased()) && Double(s) == nil && !s.hasSuffix(" ")
            return plain ? s : "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        if value is NSNull { return "null" }
        return "\(value)"
    }
}

extension PairedDataset.Layout {
    /// The layout named on the command line or in an options file (`input-target`, `blur-sharp`, `sidd`; the
    /// Swift case names are accepted too).
    public init?(optionName: String) {
        switch optionName.lowercased() {
        case "input-target", "inputtarget", "input_target": self = .inputTarget
        case "blur-sharp", "blursharp", "blur_sharp": self = .blurSharp
        case "sidd": self = .sidd
        default: return nil
        }
    }

    /// The layout's name in options files and on the command line.
    public var optionName: String {
        switch self {
        case .inputTarget: return "input-target"
        case .blurSharp: return "blur-sharp"
        case .sidd: return "sidd"
        }
    }
}
