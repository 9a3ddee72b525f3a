// One description of "which network with which constructor arguments", shared by presets, the `network`
// section of options files, checkpoints, and the `config` metadata of reference files: `{"arch": "restormer", ...}`
// with the official constructor-argument names.

import Foundation
import SKDNN
import SKDTensor

/// A network that can report its parameter count and multiply-accumulates.
public protocol ModelStatistics {
    /// Multiply-accumulates of one forward pass on a `1×3×height×width` input (convolutions, linear layers and
    /// attention matrix products).
    func multiplyAccumulates(height: Int, width: Int) -> Int
}

extension Restormer: ModelStatistics {}
extension Uformer: ModelStatistics {}
extension DRSformer: ModelStatistics {}
extension VGG19Features: ModelStatistics {}

extension Restormer {
    /// Three 2× down-samplings: sides must be multiples of 8.
    public var sizeMultiple: Int { 8 }
}

/// A problem with a model description; the message names the offending value.
public enum ModelSpecError: Error, CustomStringConvertible {
    /// No preset has this name.
    case unknownPreset(String)
    /// The `arch` field names no supported family.
    case unknownArchitecture(String)
    /// The description is malformed; the string says how.
    case invalid(String)

    /// A one-line message naming the offending value.
    public var description: String {
        switch self {
        case let .unknownPreset(name): return "unknown preset '\(name)'; known presets: \(ModelSpec.presetNames.joined(separator: ", "))"
        case let .unknownArchitecture(arch): return "unknown architecture '\(arch)'; known: restormer, uformer, drsformer"
        case let .invalid(why): return why
        }
    }
}

/// An architecture with its constructor arguments.
public enum ModelSpec: Equatable {
    /// Restormer (swz30/Restormer).
    case restormer(RestormerConfig)
    /// Uformer (ZhendongWang6/Uformer).
    case uformer(UformerConfig)
    /// DRSformer (cschenxiang/DRSformer).
    case drsformer(DRSformerConfig)

    /// The family name, as in the `arch` field.
    public var architecture: String {
        switch self {
        case .restormer: return "restormer"
        case .uformer: return "uformer"
        case .drsformer: return "drsformer"
        }
    }

    /// Every preset name.
    public static var presetNames: [String] { RestormerConfig.presetNames + UformerConfig.presetNames + DRSformerConfig.presetNames }

    /// A named preset (`restormer`, `restormer-s`, `uformer-b`, `uformer-s`, `drsformer`, `drsformer-s`).
    public static func preset(_ name: String) throws -> ModelSpec {
        if let c = RestormerConfig.preset(name) { return .restormer(c) }
        if let c = UformerConfig.preset(name) { return .uformer(c) }
        if let c = DRSformerConfig.preset(name) { return .drsformer(c) }
        throw ModelSpecError.unknownPreset(name)
    }

    /// Parses `{"arch": "...", <official constructor arguments>}`; absent arguments take the official defaults.
    public init(json: String) throws {
        let data = Data(json.utf8)
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ModelSpecError.invalid("model config is not a JSON object: \(json.prefix(200))")
        }
        try self.init(dictionary: object)
    }

    /// Builds from a decoded JSON/YAML mapping: either `{"preset": NAME, ...overrides}` or `{"arch": ..., ...}`.
    public init(dictionary: [String: Any]) throws {
        var object = dictionary
        var base: ModelSpec? = nil
        if let preset = object.removeValue(forKey: "preset") as? String { base = try ModelSpec.preset(preset) }
        let arch = (object["arch"] as? String) ?? base?.architecture
        guard let arch else { throw ModelSpecError.invalid("model config needs 'arch' or 'preset'") }
        // Overrides are applied on top of the preset's arguments.
        if let base { object = try base.dictionary().merging(object) { _, new in new } }
        let data = try JSONSerialization.data(withJSONObject: object)
        do {
            switch arch.lowercased() {
            case "restormer": self = .restormer(try JSONDecoder().decode(RestormerConfig.self, from: data))
            case "uformer": self = .uformer(try JSONDecoder().decode(UformerConfig.self, from: data))
            case "drsformer": self = .drsformer(try JSONDecoder().decode(DRSformerConfig.self, from: data))
            default: throw ModelSpecError.unknownArchitecture(arch)
            }
        } catch let error as ModelSpecError { throw error } catch {
            throw ModelSpecError.invalid("invalid \(arch) config: \(error)")
        }
    }

    /// The description as a JSON object with `arch` and the official argument names.
    public func dictionary() throws -> [String: Any] {
        let data: Data
        switch self {
        case .restormer(let c): data = try JSONEncoder().encode(c)
        case .uformer(let c): data = try JSONEncoder().encode(c)
        case .drsformer(let c): data = try JSONEncoder().encode(c)
        }
        var object = (try JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
        object["arch"] = architecture
        return object
    }

    /// The description as compact JSON text with sorted keys.
    public func jsonString() -> String {
        guard let object = try? dictionary(), let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else {
            return "{\"arch\": \"\(architecture)\"}"
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// A freshly initialised network (PyTorch's default initialisation, from `ParameterInit.generator`).
    public func makeModel() -> any TappedModel & ModelStatistics {
        switch self {
        case .restormer(let c): return Restormer(config: c)
        case .uformer(let c): return Uformer(config: c)
        case .drsformer(let c): return DRSformer(config: c)
        }
    }
}
