// The options of a training or distillation run, in BasicSR's shape (datasets / network / train / val, plus a
// distill section): the resolved `RunConfiguration`, read from YAML files (through our own walk of composed YAML),
// overridable key by key (`--set`, command-line flags), stored as JSON in every checkpoint.
//
// Resolution order: built-in defaults < options file < `--set key.path=value` < explicit command-line flags.
//
// The files of this concern: RunOptions.swift (the schema: every key, once), OptionsCoding.swift (the coders and
// the YAML/JSON text), RunPreparation.swift (every check before any work, resuming), ModelWeights.swift (weights
// with their architecture), DegradationSpec.swift (the degradation grammar).

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

/// Every option of a run, resolved. `yamlString()`, `jsonString()` and `init(dictionary:source:mode:)` write and
/// read it through the options schema (`RunOptions`, internal), also stored as JSON in checkpoints.
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
        guard let mapping = OptionsText.normalized(loaded) as? [String: Any] else {
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
                value = parsed is NSNull ? NSNull() : OptionsText.normalized(parsed)
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

    /// Reads an options tree (decoded YAML or JSON, with `--set` and flag assignments applied) through the schema
    /// (`RunOptions`).
    ///
    /// - Parameters:
    ///   - source: names the tree in error messages (the file's path).
    /// - Throws: `RunConfigurationError` for an unknown key, a value of the wrong type, an unknown preset, method
    ///   or layout, naming `source` and the key path.
    public init(dictionary tree: [String: Any], source: String, mode: RunMode) throws {
        let options = try OptionTreeDecoder.decode(RunOptions.self, from: OptionsText.normalized(tree), source: source)
        try self.init(options: options, mode: mode, source: source)
    }

    // MARK: - Writing

    /// The options tree: every option with its resolved value, in the schema (network descriptions as
    /// `{"arch": ..., official arguments}`), as plain values.
    public func dictionary() -> [String: Any] {
        (OptionsText.plain((try? OptionTreeEncoder.encode(options)) ?? OptionTreeMapping()) as? [String: Any]) ?? [:]
    }

    /// The options tree as compact JSON with sorted keys (what checkpoints and weight files store); numbers as
    /// their shortest round-trip decimals.
    public func jsonString() -> String {
        guard let tree = try? OptionTreeEncoder.encode(options) else { return "{}" }
        return OptionsText.json(tree)
    }

    /// The options as YAML in the schema's key order, a file `--config` reads back to an equal configuration:
    /// text that YAML would read as something else is quoted (`degradation: 'noise: 25'`), numbers are written as
    /// their shortest round-trip decimals (`lr: 0.001`).
    public func yamlString() -> String {
        guard let tree = try? OptionTreeEncoder.encode(options) else { return "" }
        return OptionsText.yaml(tree)
    }

    /// Reads the options stored in a checkpoint (`state.json`'s `config`) or a weights file's `config` metadata.
    ///
    /// - Parameter source: names the JSON in error messages.
    public init(json: String, source: String) throws {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)), let tree = OptionsText.normalized(object) as? [String: Any] else {
            throw RunConfigurationError("\(source): the stored configuration is not a JSON object")
        }
        let options = try OptionTreeDecoder.decode(RunOptions.self, from: tree, source: source)
        try self.init(options: options, mode: options.mode ?? .distill, source: source)
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

