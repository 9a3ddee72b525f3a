// `skd study`'s options file: an ordinary `skd distill` options file (the shared teacher, data, student, budget,
// seed) plus a `study:` section listing the runs (name, method, `--set`-style overrides), the held-out test set and
// the teacher cache's bound. The shared sections are read by `RunConfiguration`; the `study:` section is decoded
// with Codable through Yams, every unknown key rejected with the file and the key path.

import Foundation
import Yams

/// One run of a study: a name, a method and overrides of the shared options.
public struct StudyRunSpec: Codable, Equatable, Sendable {
    /// The run's name: its folder under `<study>/runs/` and its row in the table (letters, digits, `.`, `_`, `-`).
    public var name: String
    /// The distillation method.
    public var method: DistillationMethod
    /// `key.path=value` overrides applied after the method, as `skd distill --set` applies them (e.g.
    /// `distill.contrastive=false`). Only options that do not change what every run shares may be set: `distill.*`,
    /// `network.student*`, `network.init_*`, `network.vgg_weights`, `train.lr`, `train.min_lr`, `train.weight_decay`.
    public var set: [String] = []

    /// A run of `method` named `name` with `set` overrides.
    public init(name: String, method: DistillationMethod, set: [String] = []) {
        self.name = name; self.method = method; self.set = set
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case name, method, set }

    /// Decodes the run, rejecting unknown keys.
    public init(from decoder: Decoder) throws {
        try StudyKeys.reject(decoder, allowed: CodingKeys.allCases.map(\.rawValue))
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        let text = try c.decode(String.self, forKey: .method)
        guard let method = DistillationMethod(rawValue: text) else {
            throw DecodingError.dataCorruptedError(forKey: .method, in: c,
                debugDescription: "unknown method '\(text)'; known: \(DistillationMethod.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self.method = method
        set = try c.decodeIfPresent([String].self, forKey: .set) ?? []
    }
}

/// The held-out set of a study: clean images with a synthetic degradation, or a paired folder.
public struct StudyTestSet: Codable, Equatable, Sendable {
    /// The folder (relative paths against the current folder, as for every option).
    public var root: String
    /// A synthetic degradation of clean images (`noise:25`); `nil` for a paired folder.
    public var degradation: String?

    /// A test set at `root`.
    public init(root: String, degradation: String? = nil) { self.root = root; self.degradation = degradation }

    enum CodingKeys: String, CodingKey, CaseIterable { case root, degradation }

    /// Decodes the test set, rejecting unknown keys.
    public init(from decoder: Decoder) throws {
        try StudyKeys.reject(decoder, allowed: CodingKeys.allCases.map(\.rawValue))
        let c = try decoder.container(keyedBy: CodingKeys.self)
        root = try c.decode(String.self, forKey: .root)
        degradation = try c.decodeIfPresent(String.self, forKey: .degradation)
    }
}

/// The `study:` section of a study's options file.
public struct StudySpec: Codable, Equatable, Sendable {
    /// The study folder (runs, teacher cache, table, plot). Default: `runs/study`.
    public var output: String = "runs/study"
    /// The held-out images every run is evaluated on after training (never trained on). Default: the shared
    /// `datasets.val` (which then also gives the PSNR-versus-time curves).
    public var test: StudyTestSet? = nil
    /// The bound of the teacher cache on disk, in MB (10⁶ bytes); batches beyond it are recomputed. 0 disables it.
    public var teacherCacheMB: Int = 2048
    /// With an image or step budget, compute the teacher's outputs for the whole batch schedule once before the
    /// runs (so no run pays for the teacher's forward pass, and every run's time is measured alike). Default: on.
    public var precomputeTeacher: Bool = true
    /// The runs, in order.
    public var runs: [StudyRunSpec]

    /// A study of `runs`.
    public init(runs: [StudyRunSpec]) { self.runs = runs }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case output, test, runs
        case teacherCacheMB = "teacher_cache_mb"
        case precomputeTeacher = "precompute_teacher"
    }

    /// Decodes the section, rejecting unknown keys.
    public init(from decoder: Decoder) throws {
        try StudyKeys.reject(decoder, allowed: CodingKeys.allCases.map(\.rawValue))
        let c = try decoder.container(keyedBy: CodingKeys.self)
        output = try c.decodeIfPresent(String.self, forKey: .output) ?? "runs/study"
        test = try c.decodeIfPresent(StudyTestSet.self, forKey: .test)
        teacherCacheMB = try c.decodeIfPresent(Int.self, forKey: .teacherCacheMB) ?? 2048
        precomputeTeacher = try c.decodeIfPresent(Bool.self, forKey: .precomputeTeacher) ?? true
        runs = try c.decode([StudyRunSpec].self, forKey: .runs)
    }

    /// The keys a run's `set` may change: what does not change the shared teacher, data, seed or budget.
    public static let overridablePrefixes = ["distill.", "network.student", "network.init_", "network.vgg_weights",
                                             "train.lr", "train.min_lr", "train.weight_decay"]
}

/// The whole options file: only `study` is read here.
private struct StudyFileRoot: Decodable {
    var study: StudySpec
    enum CodingKeys: String, CodingKey { case study }
}

/// Unknown-key rejection for the Codable study types.
enum StudyKeys {
    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int?
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { self.stringValue = "\(intValue)"; self.intValue = intValue }
    }

    /// Throws a `DecodingError` at the first key of the mapping being decoded that is not in `allowed`.
    static func reject(_ decoder: Decoder, allowed: [String]) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        for key in c.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) where !allowed.contains(key.stringValue) {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath + [key],
                                                    debugDescription: "unknown key; known here: \(allowed.joined(separator: ", "))"))
        }
    }

    /// `study.runs[2].method` for a coding path.
    static func path(_ codingPath: [CodingKey]) -> String {
        var out = ""
        for key in codingPath {
            if let i = key.intValue, Int(key.stringValue) == i || key.stringValue.hasPrefix("Index") { out += "[\(i)]"; continue }
            out += out.isEmpty ? key.stringValue : ".\(key.stringValue)"
        }
        return out
    }

    /// A one-line message for a decoding error of `file`.
    static func message(_ error: Error, file: URL) -> String {
        guard let error = error as? DecodingError else { return "\(file.path): study: \(ErrorText.describe(error))" }
        switch error {
        case let .dataCorrupted(context):
            return "\(file.path): \(path(context.codingPath)): \(context.debugDescription)"
        case let .keyNotFound(key, context):
            return "\(file.path): \(path(context.codingPath + [key])): missing (required)"
        case let .typeMismatch(type, context):
            return "\(file.path): \(path(context.codingPath)): expected \(describe(type))"
        case let .valueNotFound(type, context):
            return "\(file.path): \(path(context.codingPath)): expected \(describe(type)), got nothing"
        @unknown default:
            return "\(file.path): study: \(error)"
        }
    }

    static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a text"
        case is Int.Type: return "a whole number"
        case is Bool.Type: return "true or false"
        case is DistillationMethod.Type: return "a method (\(DistillationMethod.allCases.map(\.rawValue).joined(separator: ", ")))"
        default: return "\(type)"
        }
    }
}

/// A study's options file, read and checked: the shared options and the `study:` section.
public struct StudyFile {
    /// The options file.
    public let file: URL
    /// The `study:` section.
    public let spec: StudySpec
    /// The shared options tree (every section but `study`), as `skd distill --config` would read it.
    public let sharedTree: [String: Any]
    /// The shared options, resolved, with absolute paths (the method is each run's).
    public let shared: RunConfiguration

    /// Reads and checks `file`.
    ///
    /// - Parameter teacherCacheMB: replaces the file's `study.teacher_cache_mb` (`--teacher-cache-mb`).
    /// - Throws: `RunConfigurationError`, one line naming the file and the key (an unknown key of the `study:`
    ///   section, a missing or mistyped value, a repeated run name, an override of a shared option).
    public init(_ file: URL, teacherCacheMB: Int? = nil) throws {
        self.file = file
        var tree = try RunConfiguration.optionsTree(yaml: file)
        guard tree["study"] != nil else {
            throw RunConfigurationError("\(file.path): no study: section (a list of runs, each a name and a method; see Docs/distillation.md)")
        }
        tree["study"] = nil
        let text = try String(contentsOf: file, encoding: .utf8)
        do {
            var decoded = try YAMLDecoder().decode(StudyFileRoot.self, from: text).study
            if let teacherCacheMB { decoded.teacherCacheMB = teacherCacheMB }
            spec = decoded
        } catch let error as RunConfigurationError {
            throw error
        } catch {
            throw RunConfigurationError(StudyKeys.message(error, file: file))
        }
        sharedTree = tree
        shared = try RunConfiguration(dictionary: tree, source: file.path, mode: .distill).withAbsolutePaths()
        try check()
    }

    private func check() throws {
        let at = "\(file.path): study"
        guard !spec.runs.isEmpty else { throw RunConfigurationError("\(at).runs: empty; list at least one run") }
        if spec.teacherCacheMB < 0 { throw RunConfigurationError("\(at).teacher_cache_mb: \(spec.teacherCacheMB) is negative (0 disables the cache)") }
        var seen = Set<String>()
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        for (i, run) in spec.runs.enumerated() {
            if run.name.isEmpty || !run.name.allSatisfy(allowed.contains) || run.name.hasPrefix(".") {
                throw RunConfigurationError("\(at).runs[\(i)].name: '\(run.name)' must be letters, digits, '.', '_' or '-' (it names a folder)")
            }
            if !seen.insert(run.name).inserted { throw RunConfigurationError("\(at).runs[\(i)].name: '\(run.name)' is used twice") }
            for assignment in run.set {
                let key = String(assignment.prefix { $0 != "=" })
                if !StudySpec.overridablePrefixes.contains(where: { key.hasPrefix($0) }) {
                    throw RunConfigurationError("\(at).runs[\(i)].set: '\(assignment)' changes what every run shares (teacher, data, seed, budget); a run may set only \(StudySpec.overridablePrefixes.map { $0 + "…" }.joined(separator: ", "))")
                }
            }
            _ = try configuration(of: i)
        }
        if testSet == nil {
            throw RunConfigurationError("\(at).test: missing, and the shared options give no datasets.val; name the held-out images")
        }
    }

    /// The study folder, absolute.
    public var directory: URL { URL(fileURLWithPath: spec.output).standardizedFileURL }

    /// The folder of run `name`.
    public func runDirectory(_ name: String) -> URL { directory.appendingPathComponent("runs").appendingPathComponent(name) }

    /// The held-out set: `study.test`, else the shared `datasets.val`.
    public var testSet: DatasetConfiguration? {
        if let t = spec.test {
            return DatasetConfiguration(root: URL(fileURLWithPath: t.root).standardizedFileURL.path, degradation: t.degradation)
        }
        return shared.valData
    }

    /// The options of run `index`: the shared tree, then `distill.method`, `name` and `output` (the run's folder),
    /// then the run's `set`, exactly as `skd distill --config <study>/shared.yml --method M --name N --output D
    /// --set ...` resolves them (see `command(of:)`).
    public func configuration(of index: Int) throws -> RunConfiguration {
        let run = spec.runs[index]
        var tree = sharedTree
        try Self.assignRunKeys(run, output: runDirectory(run.name).path, to: &tree)
        do {
            return try RunConfiguration(dictionary: tree, source: "\(file.path): study.runs[\(index)] (\(run.name))", mode: .distill).withAbsolutePaths()
        }
    }

    /// The per-run keys in the order `skd distill` applies them: flags, then `--set`.
    static func assignRunKeys(_ run: StudyRunSpec, output: String, to tree: inout [String: Any]) throws {
        try RunConfiguration.assign(run.name, at: "name", in: &tree)
        try RunConfiguration.assign(output, at: "output", in: &tree)
        try RunConfiguration.assign(run.method.rawValue, at: "distill.method", in: &tree)
        try RunConfiguration.apply(overrides: run.set, to: &tree)
    }

    /// The shared options as a YAML options file for `skd distill --config` (paths absolute).
    public func sharedYAML() throws -> String {
        try RunConfiguration(dictionary: sharedTree, source: file.path, mode: .distill).withAbsolutePaths().yamlString()
    }

    /// Where `sharedYAML()` is written in the study folder.
    public var sharedOptionsFile: URL { directory.appendingPathComponent("shared.yml") }

    /// The `skd distill` command that reproduces run `index` from `shared.yml` (shell-quoted where needed).
    public func command(of index: Int) -> String {
        let run = spec.runs[index]
        var words = ["skd", "distill", "--config", sharedOptionsFile.path, "--method", run.method.rawValue,
                     "--name", run.name, "--output", runDirectory(run.name).path]
        for assignment in run.set { words += ["--set", assignment] }
        return words.map(Self.shellQuoted).joined(separator: " ")
    }

    static func shellQuoted(_ word: String) -> String {
        let plain = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/=:,+@%")
        if !word.isEmpty && word.allSatisfy(plain.contains) { return word }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
