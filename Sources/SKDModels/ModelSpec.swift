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
    ///
    /// Every key must be an argument of the family (a typo is an error, not a default), and the result passes
    /// `validate()`: ranges, constraints between arguments, size.
    public init(dictionary: [String: Any]) throws {
        var object = dictionary
        var base: ModelSpec? = nil
        if let value = object.removeValue(forKey: "preset") {
            guard let preset = value as? String else { throw ModelSpecError.invalid("'preset' must be a preset name, got \(value)") }
            base = try ModelSpec.preset(preset)
        }
        if let value = object["arch"], !(value is String) { throw ModelSpecError.invalid("'arch' must be a family name, got \(value)") }
        let arch = (object["arch"] as? String) ?? base?.architecture
        guard let arch else { throw ModelSpecError.invalid("model config needs 'arch' or 'preset'") }
        guard let known = ModelSpec.argumentNames(architecture: arch) else { throw ModelSpecError.unknownArchitecture(arch) }
        if let base, base.architecture != arch.lowercased() {
            throw ModelSpecError.invalid("preset '\(base.architecture)' and arch '\(arch)' name different families")
        }
        for key in object.keys.sorted() where key != "arch" && !known.contains(key) {
            throw ModelSpecError.invalid("unknown \(arch.lowercased()) argument '\(key)'; known: \(known.joined(separator: ", "))")
        }
        for (key, value) in object {
            if let d = value as? Double, !d.isFinite { throw ModelSpecError.invalid("\(arch.lowercased()) argument '\(key)' must be finite, got \(d)") }
            if let list = value as? [Any], list.contains(where: { ($0 as? Double).map { !$0.isFinite } ?? false }) {
                throw ModelSpecError.invalid("\(arch.lowercased()) argument '\(key)' must hold finite numbers")
            }
        }
        // Overrides are applied on top of the preset's arguments.
        if let base { object = try base.dictionary().merging(object) { _, new in new } }
        guard JSONSerialization.isValidJSONObject(object) else { throw ModelSpecError.invalid("invalid \(arch) config: values must be numbers, text, lists or true/false") }
        let data = try JSONSerialization.data(withJSONObject: object)
        do {
            switch arch.lowercased() {
            case "restormer": self = .restormer(try JSONDecoder().decode(RestormerConfig.self, from: data))
            case "uformer": self = .uformer(try JSONDecoder().decode(UformerConfig.self, from: data))
            case "drsformer": self = .drsformer(try JSONDecoder().decode(DRSformerConfig.self, from: data))
            default: throw ModelSpecError.unknownArchitecture(arch)
            }
        } catch let error as ModelSpecError { throw error } catch let error as DecodingError {
            throw ModelSpecError.invalid("invalid \(arch) config: \(ModelSpec.describe(error))")
        } catch {
            throw ModelSpecError.invalid("invalid \(arch) config: \(error)")
        }
        try validate()
    }

    /// A decoding error as "'key': expected an integer".
    public static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
            return keys.isEmpty ? "the config" : "'" + keys.joined(separator: ".").replacingOccurrences(of: ".[", with: "[") + "'"
        }
        func kind(_ type: Any.Type) -> String {
            switch type {
            case is Int.Type, is [Int].Type: return type == Int.self ? "an integer" : "a list of integers"
            case is Double.Type: return "a number"
            case is Bool.Type: return "true or false"
            case is String.Type: return "text"
            default: return "\(type)"
            }
        }
        switch error {
        case let .typeMismatch(type, context): return "\(path(context)): expected \(kind(type))"
        case let .valueNotFound(type, context): return "\(path(context)): expected \(kind(type))"
        case let .dataCorrupted(context): return "\(path(context)): \(context.debugDescription)"
        case let .keyNotFound(key, _): return "'\(key.stringValue)' missing"
        @unknown default: return "\(error)"
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
