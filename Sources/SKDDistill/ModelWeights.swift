// Trained weights with their architecture: read from a `.safetensors` file, a checkpoint folder or a run folder,
// checked (architecture named or given, finite values) and built into a model.

import Foundation
import SKDImage
import SKDModels
import SKDNN
import SKDTensor

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
