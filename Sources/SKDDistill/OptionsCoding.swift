// The coders between the options schema (`RunOptions`, Codable structs whose CodingKeys are the option names) and
// the options tree: plain Swift values (`[String: Any]` mappings, `[Any]` lists, `String`, `Int`, `Double`, `Bool`,
// `NSNull`) as our own walk of composed YAML produces them (`OptionsYAML`), as JSONSerialization produces them from
// a checkpoint, and as the command line's flags assign them.
//
// Why not Yams' `YAMLDecoder`/`YAMLEncoder`: the options fuzzer found Yams' mapping constructor trapping on a
// non-scalar key, so YAML goes through our composed-node walk (string keys only) first; the decoder below then
// reads numbers leniently as the hand-written reader did (YAML 1.1 reads `2e-4` as text), takes a comma-separated
// text for a list, rejects unknown keys naming the file and key path, and throws one-line `RunConfigurationError`s
// instead of `DecodingError`s. The encoder writes every `Float` as its shortest round-trip decimal (`0.001`, not
// `0.0010000000474974513`), which Yams' encoder does not.

import Foundation
import SKDTensor
import Yams

// MARK: - Values with a reading of their own

/// A schema value read from and written to the options tree by hand (a network given as a preset name or a
/// mapping, a layout with an `auto`, a token threshold with an `all`): the coders below hand it the raw tree value
/// and store the tree value it gives back.
protocol OptionTreeValue: Codable {
    /// Reads `value` (a plain tree value, never `NSNull` unless `readsNull`) at `path`.
    init(treeValue value: Any, at path: OptionTreePath) throws
    /// The value to store in the tree.
    var treeValue: Any { get }
    /// Whether an explicit `null` is read by `init(treeValue:at:)` instead of meaning "the default".
    static var readsNull: Bool { get }
}

extension OptionTreeValue {
    static var readsNull: Bool { false }

    /// The value an `OptionTreeDecoder` holds (each conforming type's `init(from:)` calls this).
    static func read(from decoder: Decoder) throws -> Self {
        guard let tree = decoder as? OptionTreeDecoder else {
            throw RunConfigurationError("\(Self.self) is read from options trees only")
        }
        return try Self(treeValue: tree.value, at: tree.path)
    }

    /// Stores `treeValue` in an `OptionTreeEncoder` (each conforming type's `encode(to:)` calls this).
    func write(to encoder: Encoder) throws {
        guard let tree = encoder as? OptionTreeEncoder else {
            throw RunConfigurationError("\(Self.self) is written to options trees only")
        }
        tree.box.value = treeValue
    }
}

/// A closed choice written as its raw value and read case-insensitively (`method: SKD` is `skd`); unknown names
/// are errors listing the known ones.
protocol OptionChoice {
    /// What the choice is called in messages ("method", "layout").
    static var optionNoun: String { get }
    /// Every accepted name, for messages.
    static var optionNames: [String] { get }
    /// The choice named `name` (any case).
    init?(optionName name: String)
    /// The name written to options files.
    var optionName: String { get }
}

extension OptionChoice where Self: RawRepresentable, Self.RawValue == String, Self: CaseIterable {
    static var optionNames: [String] { allCases.map(\.rawValue) }
    init?(optionName name: String) { self.init(rawValue: name.lowercased()) }
    var optionName: String { rawValue }
}

// MARK: - Paths and messages

/// Where a value sits in the options tree, with the file (or `--set`, `options`) it came from, for messages.
struct OptionTreePath {
    /// Names the tree in messages: the file's path, `--set`, or `state.json`'s path.
    let source: String
    /// The keys from the root.
    let keys: [CodingKey]

    /// `datasets.train.patch_size`, `distill.taps[1]`.
    var text: String {
        keys.reduce(into: "") { out, key in
            if let index = key.intValue { out += "[\(index)]" } else { out += out.isEmpty ? key.stringValue : ".\(key.stringValue)" }
        }
    }

    /// The path one key further.
    func appending(_ key: CodingKey) -> OptionTreePath { OptionTreePath(source: source, keys: keys + [key]) }

    /// "<source>: <path>: <why>", one line.
    func error(_ why: String) -> RunConfigurationError {
        let at = text
        return RunConfigurationError(at.isEmpty ? "\(source): \(why)" : "\(source): \(at): \(why)")
    }

    /// A value in messages: text quoted, sections and lists by kind.
    static func describe(_ value: Any) -> String {
        if let s = value as? String { return "'\(s)'" }
        if value is [Any] { return "a list" }
        if value is [String: Any] { return "a section" }
        if value is NSNull { return "null" }
        return "\(value)"
    }
}

/// A key of the tree that is not one of the schema's CodingKeys (a list index, or a key named by text).
struct OptionTreeKey: CodingKey {
    let stringValue: String
    let intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue; intValue = nil }
    init(intValue: Int) { stringValue = "\(intValue)"; self.intValue = intValue }
}

// MARK: - Reading

/// The state of one decoding pass: the keys each mapping of the tree allows, gathered from every container asked
/// of it (a section may be read by two schema structs, e.g. a training dataset's data keys and its batch keys),
/// checked once the pass is over.
final class OptionTreeReading {
    let source: String
    private var order: [String] = []
    private var sections: [String: (path: OptionTreePath, keys: [String], allowed: Set<String>, names: [String])] = [:]

    init(source: String) { self.source = source }

    /// Records that the mapping at `path` holding `keys` allows `allowed`.
    func allow(_ allowed: [String], in keys: [String], at path: OptionTreePath) {
        let id = path.text
        if var entry = sections[id] {
            for name in allowed where entry.allowed.insert(name).inserted { entry.names.append(name) }
            sections[id] = entry
        } else {
            order.append(id)
            sections[id] = (path, keys, Set(allowed), allowed)
        }
    }

    /// Throws for the first key (in section order, then alphabetically) that no schema struct read.
    func checkUnknownKeys() throws {
        for id in order {
            guard let entry = sections[id] else { continue }
            for key in entry.keys.sorted() where !entry.allowed.contains(key) {
                throw entry.path.appending(OptionTreeKey(stringValue: key))
                    .error("unknown option; known here: \(entry.names.joined(separator: ", "))")
            }
        }
    }
}

/// Decodes the options schema from an options tree.
struct OptionTreeDecoder: Decoder {
    /// The value at `path`.
    let value: Any
    let path: OptionTreePath
    let reading: OptionTreeReading

    var codingPath: [CodingKey] { path.keys }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    /// Reads `type` from `tree` and checks that every key of every section is an option.
    static func decode<T: Decodable>(_ type: T.Type, from tree: Any, source: String) throws -> T {
        let reading = OptionTreeReading(source: source)
        let decoder = OptionTreeDecoder(value: tree, path: OptionTreePath(source: source, keys: []), reading: reading)
        let result = try decoder.read(type)
        try reading.checkUnknownKeys()
        return result
    }

    func error(_ why: String) -> RunConfigurationError { path.error(why) }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard let mapping = value as? [String: Any] else {
            throw error("expected a section (a mapping), got \(OptionTreePath.describe(value))")
        }
        if let all = Key.self as? any (CodingKey & CaseIterable).Type {
            reading.allow(Self.names(of: all), in: Array(mapping.keys), at: path)
        }
        return KeyedDecodingContainer(KeyedReader<Key>(mapping: mapping, decoder: self))
    }

    /// The option names of a CodingKeys enum, in declaration order.
    private static func names<K: CodingKey & CaseIterable>(of type: K.Type) -> [String] { K.allCases.map(\.stringValue) }

    func unkeyedContainer() throws -> UnkeyedDecodingContainer {
        if let list = value as? [Any] { return ListReader(items: list, decoder: self) }
        // A comma-separated text stands for a list (`taps: encoder_level1, latent`, `--taps a,b`).
        if let text = value as? String {
            let items = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            return ListReader(items: items, decoder: self)
        }
        throw error("expected a list, got \(OptionTreePath.describe(value))")
    }

    func singleValueContainer() throws -> SingleValueDecodingContainer { ValueReader(decoder: self) }

    /// The child decoder for `value` at `key`.
    func child(_ value: Any, at key: CodingKey) -> OptionTreeDecoder {
        OptionTreeDecoder(value: value, path: path.appending(key), reading: reading)
    }

    // MARK: Scalars

    /// Reads this decoder's value as `type`: scalars leniently (see the file comment), choices case-insensitively,
    /// schema structs through their `init(from:)`.
    func read<T: Decodable>(_ type: T.Type) throws -> T {
        if value is NSNull, !((T.self as? any OptionTreeValue.Type)?.readsNull ?? false) {
            throw error("expected a value, got null")
        }
        let result: Any
        switch type {
        case is String.Type: result = try string()
        case is Bool.Type: result = try bool()
        case is Int.Type: result = try integer()
        case is UInt64.Type:
            if let s = value as? String, let u = UInt64(s.trimmingCharacters(in: .whitespaces)) { result = u; break }
            let v = try integer()
            guard v >= 0 else { throw error("must be ≥ 0, got \(v)") }
            result = UInt64(v)
        case is Float.Type: result = Float(try number())
        case is Double.Type: result = try number()
        default:
            if let integerType = T.self as? any FixedWidthInteger.Type {
                let v = try integer()
                guard let fitted = integerType.init(exactly: v) else { throw error("\(v) is out of range") }
                result = fitted
            } else if let choice = T.self as? any OptionChoice.Type {
                let name = try string()
                guard let v = choice.init(optionName: name.trimmingCharacters(in: .whitespaces)) else {
                    throw error("unknown \(choice.optionNoun) '\(name)'; known: \(choice.optionNames.joined(separator: ", "))")
                }
                result = v
            } else {
                result = try T(from: self)
            }
        }
        guard let typed = result as? T else { throw error("cannot be read as \(T.self)") }
        return typed
    }

    func string() throws -> String {
        switch value {
        case let s as String: return s
        case let i as Int: return String(i)
        case let d as Double: return String(d)
        default: throw error("expected text, got \(OptionTreePath.describe(value))")
        }
    }

    func bool() throws -> Bool {
        if let b = value as? Bool { return b }
        if let s = value as? String {
            switch s.lowercased() {
            case "true", "yes", "on": return true
            case "false", "no", "off": return false
            default: break
            }
        }
        throw error("expected true or false, got \(OptionTreePath.describe(value))")
    }

    func integer() throws -> Int {
        switch value {
        case is Bool: break
        case let i as Int: return i
        case let d as Double where d.rounded() == d && abs(d) < 1e15: return Int(d)
        case let f as Float where f.rounded() == f && abs(f) < 1e15: return Int(f)
        case let s as String:
            let t = s.trimmingCharacters(in: .whitespaces)
            if let i = Int(t.replacingOccurrences(of: "_", with: "")) { return i }
            if let d = Double(t), d.rounded() == d, abs(d) < 1e15 { return Int(d) }
        default: break
        }
        throw error("expected an integer, got \(OptionTreePath.describe(value))")
    }

    func number() throws -> Double {
        switch value {
        case is Bool: break
        case let d as Double: return d
        case let f as Float: return Double(f)
        case let i as Int: return Double(i)
        // YAML 1.1 reads `2e-4` (no dot) as text.
        case let s as String: if let d = Double(s.trimmingCharacters(in: .whitespaces)) { return d }
        default: break
        }
        throw error("expected a number, got \(OptionTreePath.describe(value))")
    }
}

/// A section of the tree read by a schema struct.
private struct KeyedReader<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let mapping: [String: Any]
    let decoder: OptionTreeDecoder

    var codingPath: [CodingKey] { decoder.codingPath }
    var allKeys: [Key] { mapping.keys.sorted().compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool { mapping[key.stringValue] != nil }

    func decodeNil(forKey key: Key) throws -> Bool { mapping[key.stringValue].map { $0 is NSNull } ?? true }

    private func value(_ key: Key) throws -> Any {
        guard let v = mapping[key.stringValue] else { throw decoder.path.appending(key).error("missing") }
        return v
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try decoder.child(try value(key), at: key).read(type)
    }

    /// Absent or `null`: `nil` (the default), except for values that read `null` themselves.
    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let v = mapping[key.stringValue] else { return nil }
        if v is NSNull, !((T.self as? any OptionTreeValue.Type)?.readsNull ?? false) { return nil }
        return try decoder.child(v, at: key).read(type)
    }

    // The concrete overloads every keyed container must have, all through `OptionTreeDecoder.read`.
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try decode(type, key) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try decode(type, key) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try decode(type, key) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try decode(type, key) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try decode(type, key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try decode(type, key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try decode(type, key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try decode(type, key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try decode(type, key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try decode(type, key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try decode(type, key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try decode(type, key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try decode(type, key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try decode(type, key) }
    func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? { try decodeIfPresent(type, key) }
    func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? { try decodeIfPresent(type, key) }
    func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? { try decodeIfPresent(type, key) }
    func decodeIfPresent(_ type: Float.Type, forKey key: Key) throws -> Float? { try decodeIfPresent(type, key) }
    func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? { try decodeIfPresent(type, key) }
    func decodeIfPresent(_ type: Int8.Type, forKey key: Key) throws -> Int8? { try decodeIfPresent(type, key) }
    func decodeIfPresent(_ type: Int16.Type, forKey key: Key) throws -> Int16? { try decodeIfPresent(type, key) }
    func decodeIfPresent(_ type: Int32.Type, forKey key: Key) throws -> Int32? { try decodeIfPresent(type, key) }
    func decodeIfPresent(_ type: Int64.Type, forKey key: Key) throws -> Int64? { try decodeIfPresent(type, key) }
    func decodeIfPresent(_ type: UInt.Type, forKey key: Key) throws -> UInt? { try decodeIfPresent(type, key) }
    func decodeIfPresent(_ type: UInt8.Type, forKey key: Key) throws -> UInt8? { try decodeIfPresent(type, key) }
    func decodeIfPresent(_ type: UInt16.Type, forKey key: Key) throws -> UInt16? { try decodeIfPresent(type, key) }
    func decodeIfPresent(_ type: UInt32.Type, forKey key: Key) throws -> UInt32? { try decodeIfPresent(type, key) }
    func decodeIfPresent(_ type: UInt64.Type, forKey key: Key) throws -> UInt64? { try decodeIfPresent(type, key) }

    private func decode<T: Decodable>(_ type: T.Type, _ key: Key) throws -> T { try decoder.child(try value(key), at: key).read(type) }
    private func decodeIfPresent<T: Decodable>(_ type: T.Type, _ key: Key) throws -> T? {
        guard let v = mapping[key.stringValue], !(v is NSNull) else { return nil }
        return try decoder.child(v, at: key).read(type)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try decoder.child(try value(key), at: key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> UnkeyedDecodingContainer {
        try decoder.child(try value(key), at: key).unkeyedContainer()
    }

    func superDecoder() throws -> Decoder { decoder }
    func superDecoder(forKey key: Key) throws -> Decoder { decoder.child(mapping[key.stringValue] ?? NSNull(), at: key) }
}

/// A list of the tree.
private struct ListReader: UnkeyedDecodingContainer {
    let items: [Any]
    let decoder: OptionTreeDecoder
    var currentIndex = 0

    init(items: [Any], decoder: OptionTreeDecoder) { self.items = items; self.decoder = decoder }

    var codingPath: [CodingKey] { decoder.codingPath }
    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    private mutating func next() throws -> OptionTreeDecoder {
        guard !isAtEnd else { throw decoder.error("the list ends early") }
        defer { currentIndex += 1 }
        return decoder.child(items[currentIndex], at: OptionTreeKey(intValue: currentIndex))
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, items[currentIndex] is NSNull else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try next().read(type) }
    mutating func decode(_ type: Bool.Type) throws -> Bool { try next().read(type) }
    mutating func decode(_ type: String.Type) throws -> String { try next().read(type) }
    mutating func decode(_ type: Double.Type) throws -> Double { try next().read(type) }
    mutating func decode(_ type: Float.Type) throws -> Float { try next().read(type) }
    mutating func decode(_ type: Int.Type) throws -> Int { try next().read(type) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try next().read(type) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try next().read(type) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try next().read(type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try next().read(type) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try next().read(type) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try next().read(type) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try next().read(type) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try next().read(type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try next().read(type) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try next().container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> UnkeyedDecodingContainer { try next().unkeyedContainer() }

    mutating func superDecoder() throws -> Decoder { try next() }
}

/// One value of the tree.
private struct ValueReader: SingleValueDecodingContainer {
    let decoder: OptionTreeDecoder
    var codingPath: [CodingKey] { decoder.codingPath }
    func decodeNil() -> Bool { decoder.value is NSNull }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decoder.read(type) }
    func decode(_ type: Bool.Type) throws -> Bool { try decoder.read(type) }
    func decode(_ type: String.Type) throws -> String { try decoder.read(type) }
    func decode(_ type: Double.Type) throws -> Double { try decoder.read(type) }
    func decode(_ type: Float.Type) throws -> Float { try decoder.read(type) }
    func decode(_ type: Int.Type) throws -> Int { try decoder.read(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try decoder.read(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try decoder.read(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try decoder.read(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try decoder.read(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try decoder.read(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try decoder.read(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try decoder.read(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try decoder.read(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try decoder.read(type) }
}

// MARK: - Writing

/// Where an encoder puts its value (a class: nested encoders fill their parent's slot after the fact).
final class OptionTreeBox {
    var value: Any?
    init() {}
}

/// A mapping of the written tree, in the schema's key order.
final class OptionTreeMapping {
    private(set) var pairs: [(key: String, value: OptionTreeBox)] = []

    /// The slot for `key` (the existing one when two schema structs write one section).
    func slot(_ key: String) -> OptionTreeBox {
        if let existing = pairs.first(where: { $0.key == key }) { return existing.value }
        let box = OptionTreeBox()
        pairs.append((key, box))
        return box
    }

    /// The pairs that received a value.
    var written: [(key: String, value: Any)] { pairs.compactMap { pair in pair.value.value.map { (pair.key, $0) } } }
}

/// A written list.
final class OptionTreeList {
    var items: [OptionTreeBox] = []
    init() {}
}

/// Encodes the options schema into a tree of `OptionTreeMapping`, `OptionTreeList` and scalars (`String`, `Int`,
/// `Double` holding a `Float`'s shortest decimal, `Bool`), from which `OptionsYAML` and `OptionsJSON` write text.
struct OptionTreeEncoder: Encoder {
    let box: OptionTreeBox
    let codingPath: [CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    /// The tree of `value`.
    static func encode<T: Encodable>(_ value: T) throws -> Any {
        let box = OptionTreeBox()
        try OptionTreeEncoder(box: box, codingPath: []).write(value)
        return box.value ?? OptionTreeMapping()
    }

    /// A `Float` as the `Double` of its shortest round-trip decimal (`Float(0.001)` → `0.001`).
    static func shortest(_ value: Float) -> Double { value.isFinite ? Double("\(value)") ?? Double(value) : Double(value) }

    func write<T: Encodable>(_ value: T) throws {
        switch value {
        case let v as String: box.value = v
        case let v as Bool: box.value = v
        case let v as Int: box.value = v
        // Seeds beyond Int as text (read back by the decoder; JSON and YAML integers stop at Int.max here).
        case let v as UInt64: box.value = v <= UInt64(Int.max) ? Int(v) as Any : String(v) as Any
        case let v as Float: box.value = Self.shortest(v)
        case let v as Double: box.value = v
        case let v as any BinaryInteger: box.value = Int(exactly: v).map { $0 as Any } ?? String(describing: v)
        case let v as any OptionChoice: box.value = v.optionName
        default: try value.encode(to: self)
        }
    }

    func child(_ box: OptionTreeBox, at key: CodingKey) -> OptionTreeEncoder { OptionTreeEncoder(box: box, codingPath: codingPath + [key]) }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        let mapping = (box.value as? OptionTreeMapping) ?? OptionTreeMapping()
        box.value = mapping
        return KeyedEncodingContainer(KeyedWriter<Key>(mapping: mapping, encoder: self))
    }

    func unkeyedContainer() -> UnkeyedEncodingContainer {
        let list = (box.value as? OptionTreeList) ?? OptionTreeList()
        box.value = list
        return ListWriter(list: list, encoder: self)
    }

    func singleValueContainer() -> SingleValueEncodingContainer { ValueWriter(encoder: self) }
}

private struct KeyedWriter<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let mapping: OptionTreeMapping
    let encoder: OptionTreeEncoder
    var codingPath: [CodingKey] { encoder.codingPath }

    func encodeNil(forKey key: Key) throws { mapping.slot(key.stringValue).value = NSNull() }

    func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try encoder.child(mapping.slot(key.stringValue), at: key).write(value)
    }

    func encode(_ value: Bool, forKey key: Key) throws { try encode(value, key) }
    func encode(_ value: String, forKey key: Key) throws { try encode(value, key) }
    func encode(_ value: Double, forKey key: Key) throws { try encode(value, key) }
    func encode(_ value: Float, forKey key: Key) throws { try encode(value, key) }
    func encode(_ value: Int, forKey key: Key) throws { try encode(value, key) }
    func encode(_ value: Int8, forKey key: Key) throws { try encode(value, key) }
    func encode(_ value: Int16, forKey key: Key) throws { try encode(value, key) }
    func encode(_ value: Int32, forKey key: Key) throws { try encode(value, key) }
    func encode(_ value: Int64, forKey key: Key) throws { try encode(value, key) }
    func encode(_ value: UInt, forKey key: Key) throws { try encode(value, key) }
    func encode(_ value: UInt8, forKey key: Key) throws { try encode(value, key) }
    func encode(_ value: UInt16, forKey key: Key) throws { try encode(value, key) }
    func encode(_ value: UInt32, forKey key: Key) throws { try encode(value, key) }
    func encode(_ value: UInt64, forKey key: Key) throws { try encode(value, key) }
    private func encode<T: Encodable>(_ value: T, _ key: Key) throws {
        try encoder.child(mapping.slot(key.stringValue), at: key).write(value)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        encoder.child(mapping.slot(key.stringValue), at: key).container(keyedBy: keyType)
    }

    func nestedUnkeyedContainer(forKey key: Key) -> UnkeyedEncodingContainer {
        encoder.child(mapping.slot(key.stringValue), at: key).unkeyedContainer()
    }

    func superEncoder() -> Encoder { encoder }
    func superEncoder(forKey key: Key) -> Encoder { encoder.child(mapping.slot(key.stringValue), at: key) }
}

private struct ListWriter: UnkeyedEncodingContainer {
    let list: OptionTreeList
    let encoder: OptionTreeEncoder
    var codingPath: [CodingKey] { encoder.codingPath }
    var count: Int { list.items.count }

    private func next() -> OptionTreeEncoder {
        let box = OptionTreeBox()
        list.items.append(box)
        return encoder.child(box, at: OptionTreeKey(intValue: list.items.count - 1))
    }

    mutating func encodeNil() throws { next().box.value = NSNull() }
    mutating func encode<T: Encodable>(_ value: T) throws { try next().write(value) }
    mutating func encode(_ value: Bool) throws { try next().write(value) }
    mutating func encode(_ value: String) throws { try next().write(value) }
    mutating func encode(_ value: Double) throws { try next().write(value) }
    mutating func encode(_ value: Float) throws { try next().write(value) }
    mutating func encode(_ value: Int) throws { try next().write(value) }
    mutating func encode(_ value: Int8) throws { try next().write(value) }
    mutating func encode(_ value: Int16) throws { try next().write(value) }
    mutating func encode(_ value: Int32) throws { try next().write(value) }
    mutating func encode(_ value: Int64) throws { try next().write(value) }
    mutating func encode(_ value: UInt) throws { try next().write(value) }
    mutating func encode(_ value: UInt8) throws { try next().write(value) }
    mutating func encode(_ value: UInt16) throws { try next().write(value) }
    mutating func encode(_ value: UInt32) throws { try next().write(value) }
    mutating func encode(_ value: UInt64) throws { try next().write(value) }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        next().container(keyedBy: keyType)
    }
    mutating func nestedUnkeyedContainer() -> UnkeyedEncodingContainer { next().unkeyedContainer() }
    mutating func superEncoder() -> Encoder { next() }
}

private struct ValueWriter: SingleValueEncodingContainer {
    let encoder: OptionTreeEncoder
    var codingPath: [CodingKey] { encoder.codingPath }
    mutating func encodeNil() throws { encoder.box.value = NSNull() }
    mutating func encode<T: Encodable>(_ value: T) throws { try encoder.write(value) }
    mutating func encode(_ value: Bool) throws { try encoder.write(value) }
    mutating func encode(_ value: String) throws { try encoder.write(value) }
    mutating func encode(_ value: Double) throws { try encoder.write(value) }
    mutating func encode(_ value: Float) throws { try encoder.write(value) }
    mutating func encode(_ value: Int) throws { try encoder.write(value) }
    mutating func encode(_ value: Int8) throws { try encoder.write(value) }
    mutating func encode(_ value: Int16) throws { try encoder.write(value) }
    mutating func encode(_ value: Int32) throws { try encoder.write(value) }
    mutating func encode(_ value: Int64) throws { try encoder.write(value) }
    mutating func encode(_ value: UInt) throws { try encoder.write(value) }
    mutating func encode(_ value: UInt8) throws { try encoder.write(value) }
    mutating func encode(_ value: UInt16) throws { try encoder.write(value) }
    mutating func encode(_ value: UInt32) throws { try encoder.write(value) }
    mutating func encode(_ value: UInt64) throws { try encoder.write(value) }
}

// MARK: - Text

/// Options trees to and from text.
enum OptionsText {
    /// Yams mappings (`[AnyHashable: Any]`) as `[String: Any]`, and JSONSerialization's `NSNumber`s as `Bool`,
    /// `Int` or `Double`, recursively: the decoder then sees plain Swift values whatever the source.
    static func normalized(_ value: Any) -> Any {
        let type = Swift.type(of: value)
        if type == Int.self || type == Double.self || type == Bool.self || type == String.self || type == Float.self { return value }
        if let mapping = value as? [String: Any] { return mapping.mapValues(normalized) }
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

    /// A written tree as plain values (`[String: Any]`, `[Any]`, scalars).
    static func plain(_ value: Any) -> Any {
        if let mapping = value as? OptionTreeMapping {
            var out: [String: Any] = [:]
            for (key, value) in mapping.written { out[key] = plain(value) }
            return out
        }
        if let list = value as? OptionTreeList { return list.items.map { $0.value.map(plain) ?? NSNull() } }
        return value
    }

    /// A number as YAML reads it back as a float: always with a dot (`1.0e-06`, not `1e-06`, which YAML 1.1 reads
    /// as text), non-finite values as `.inf`, `-.inf`, `.nan`.
    static func yamlNumber(_ d: Double) -> String {
        if d.isNaN { return ".nan" }
        if d.isInfinite { return d < 0 ? "-.inf" : ".inf" }
        var text = "\(d)"
        if !text.contains(".") {
            if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) { text.insert(contentsOf: ".0", at: e) } else { text += ".0" }
        }
        return text
    }

    /// A written tree as a YAML node: mappings in the schema's order, lists of scalars in flow style, text that
    /// would read back as another type quoted.
    static func node(_ value: Any) -> Node {
        switch value {
        case let mapping as OptionTreeMapping:
            return .mapping(Node.Mapping(mapping.written.map { (Node($0.key), node($0.value)) }))
        case let list as OptionTreeList:
            return node(list.items.map { $0.value ?? NSNull() })
        case let mapping as [String: Any]:
            return .mapping(Node.Mapping(mapping.keys.sorted().map { (Node($0), node(mapping[$0]!)) }))
        case let list as [Any]:
            let items = list.map(node)
            let flat = items.allSatisfy { $0.scalar != nil }
            return .sequence(Node.Sequence(items, Tag(.implicit), flat ? .flow : .block))
        case let b as Bool: return Node(b ? "true" : "false")
        case let i as Int: return Node(String(i))
        case let d as Double: return Node(yamlNumber(d))
        case let f as Float: return Node(yamlNumber(OptionTreeEncoder.shortest(f)))
        case let s as String: return .scalar(s.represented())
        default: return Node("null")
        }
    }

    /// A written tree as YAML text.
    static func yaml(_ tree: Any) -> String {
        (try? Yams.serialize(node: node(tree), width: -1, allowUnicode: true)) ?? ""
    }

    /// A written tree as compact JSON with sorted keys. Non-finite numbers (never valid in a run, but a tree may
    /// hold one before the run checks) are written as the text `inf`, `-inf`, `nan`, which the reader takes back.
    static func json(_ value: Any) -> String {
        switch value {
        case let mapping as OptionTreeMapping:
            return json(plain(mapping))
        case let list as OptionTreeList:
            return json(plain(list))
        case let mapping as [String: Any]:
            return "{" + mapping.keys.sorted().map { "\(json($0)):\(json(mapping[$0]!))" }.joined(separator: ",") + "}"
        case let list as [Any]:
            return "[" + list.map(json).joined(separator: ",") + "]"
        case let b as Bool: return b ? "true" : "false"
        case let i as Int: return String(i)
        case let d as Double: return d.isFinite ? "\(d)" : json("\(d)")
        case let f as Float: return json(OptionTreeEncoder.shortest(f))
        case let s as String: return SafeTensors.jsonString(s)
        default: return "null"
        }
    }
}
