// A family's constructor arguments under their official names, as the exporter reads them.

import Foundation
import SKDModels

/// The arguments of `ModelSpec.dictionary()` (`inp_channels`, `num_blocks`, `LayerNorm_type`, `win_size`, ...), read
/// by key so the exporter does not depend on the Swift spelling of the configuration structs.
struct OfficialArguments {
    let values: [String: Any]
    let family: String

    init(_ spec: ModelSpec) throws {
        values = try spec.dictionary()
        family = spec.architecture
    }

    private func bad(_ key: String, _ kind: String) -> ONNXExportError {
        ONNXExportError("\(family) configuration: '\(key)' must be \(kind), got \(values[key].map { "\($0)" } ?? "nothing")")
    }

    private static func integer(_ v: Any) -> Int? {
        if let i = v as? Int { return i }
        if let n = v as? NSNumber, Double(n.intValue) == n.doubleValue { return n.intValue }
        return nil
    }

    /// An integer argument.
    func int(_ key: String) throws -> Int {
        guard let v = values[key], let i = Self.integer(v) else { throw bad(key, "an integer") }
        return i
    }

    /// A list-of-integers argument.
    func ints(_ key: String) throws -> [Int] {
        guard let list = values[key] as? [Any] else { throw bad(key, "a list of integers") }
        let ints = list.compactMap(Self.integer)
        guard ints.count == list.count else { throw bad(key, "a list of integers") }
        return ints
    }

    /// A number argument.
    func double(_ key: String) throws -> Double {
        if let d = values[key] as? Double { return d }
        guard let n = values[key] as? NSNumber else { throw bad(key, "a number") }
        return n.doubleValue
    }

    /// A number that may be absent (`nil` when the key is missing or null).
    func optionalDouble(_ key: String) throws -> Double? {
        guard let v = values[key], !(v is NSNull) else { return nil }
        return try double(key)
    }

    /// A true/false argument.
    func bool(_ key: String) throws -> Bool {
        if let b = values[key] as? Bool { return b }
        guard let n = values[key] as? NSNumber else { throw bad(key, "true or false") }
        return n.boolValue
    }

    /// A text argument.
    func string(_ key: String) throws -> String {
        guard let v = values[key] as? String else { throw bad(key, "text") }
        return v
    }
}
