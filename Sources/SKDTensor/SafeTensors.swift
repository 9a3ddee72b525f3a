// The safetensors format (https://github.com/huggingface/safetensors), the exchange format between SwiftSKD
// and PyTorch: reference tensors, pretrained weights and checkpoints.
//
// Layout: an 8-byte little-endian unsigned header length N, N bytes of UTF-8 JSON, then the data buffer.
// The JSON maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the
// start of the data buffer, little-endian elements, row-major) and may hold "__metadata__": a string → string map.
//
// Reading validates the whole header before copying anything, so a corrupt file fails with one clear error
// instead of producing garbage tensors. Writing goes to a temporary file that is renamed into place, so an
// interrupted save never destroys the previous checkpoint.

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The contents of a safetensors file.
public struct SafeTensorsFile {
    /// The floating-point tensors, converted to float32, by name.
    public var tensors: [String: Tensor]
    /// The `__metadata__` string map (empty when the file has none).
    public var metadata: [String: String]
    /// Tensors that were not loaded because their dtype is not floating point (integer or boolean buffers
    /// such as PyTorch's `relative_position_index`), by name → reason.
    public var skipped: [String: String]

    /// A file's contents, as assembled by `SafeTensors.read` or by hand before `SafeTensors.write`.
    public init(tensors: [String: Tensor] = [:], metadata: [String: String] = [:], skipped: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
        self.skipped = skipped
    }
}

/// A failure to read or write a safetensors file. The message names the file and the cause.
public enum SafeTensorsError: Error, LocalizedError, CustomStringConvertible {
    /// The file could not be opened, read, created or renamed (the operating system's reason).
    case io(path: String, reason: String)
    /// The 8-byte length prefix or the JSON header is malformed.
    case invalidHeader(path: String, reason: String)
    /// One entry of the header is malformed or points outside its data.
    case invalidTensor(path: String, name: String, reason: String)

    /// The message, naming the file (and tensor) and the cause.
    public var description: String {
        switch self {
        case let .io(path, reason):
            return "safetensors '\(path)': \(reason)"
        case let .invalidHeader(path, reason):
            return "safetensors '\(path)': invalid header: \(reason)"
        case let .invalidTensor(path, name, reason):
            return "safetensors '\(path)': tensor '\(name)': \(reason)"
        }
    }

    /// The same text as `description`, for `localizedDescription`.
    public var errorDescription: String? { description }
}

/// Reading and writing safetensors files.
public enum SafeTensors {
    /// Element sizes in bytes of every dtype the format defines with a whole-byte size.
    /// Dtypes not listed here (e.g. sub-byte float formats) are rejected as unknown.
    private static let dtypeSizes: [String: Int] = [
        "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
        "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
        "I32": 4, "U32": 4, "F32": 4,
        "I64": 8, "U64": 8, "F64": 8,
    ]
    /// Dtypes converted to float32 on reading; every other known dtype is reported in `skipped`.
    private static let floatDtypes: Set<String> = ["F32", "F16", "BF16", "F64"]

    // MARK: Reading

    /// Reads a safetensors file.
    ///
    /// F32 tensors are copied as they are; F16, BF16 and F64 tensors are converted to float32. Tensors of other
    /// known dtypes (integers, booleans, 8-bit floats) are not loaded and are listed in `skipped` with the reason.
    /// The file is memory-mapped, so only the tensors' own copies are allocated.
    ///
    /// - Throws: `SafeTensorsError` when the file cannot be read, the header length exceeds the file, the JSON is
    ///   malformed, a dtype is unknown, a shape or offset pair is invalid, a tensor's byte range does not equal
    ///   its element count × dtype size, lies outside the data buffer or overlaps another tensor.
    public static func read(_ url: URL) throws -> SafeTensorsFile {
        let path = url.path
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw SafeTensorsError.io(path: path, reason: "cannot read the file: \(error.localizedDescription)")
        }
        return try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            try parse(bytes, path: path)
        }
    }

    /// One validated header entry.
    private struct Entry {
        var name: String
        var dtype: String
        var shape: [Int]
        var begin: Int
        var end: Int
    }

    private static func parse(_ bytes: UnsafeRawBufferPointer, path: String) throws -> SafeTensorsFile {
        func headerError(_ reason: String) -> SafeTensorsError { .invalidHeader(path: path, reason: reason) }

        guard bytes.count >= 8 else {
            throw headerError("the file has \(bytes.count) bytes, fewer than the 8-byte header length (truncated?)")
        }
        var rawLength: UInt64 = 0
        for i in 0..<8 { rawLength |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        guard rawLength <= UInt64(bytes.count - 8) else {
            throw headerError("header length \(rawLength) exceeds the \(bytes.count - 8) bytes after the length prefix (truncated?)")
        }
        let headerLength = Int(rawLength)
        let dataStart = 8 + headerLength
        let dataLength = bytes.count - dataStart

        let headerBytes = Data(bytes[8..<dataStart])
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: headerBytes, options: [])
        } catch {
            throw headerError("the header is not valid JSON (\(error.localizedDescription))")
        }
        guard let object = json as? [String: Any] else {
            throw headerError("the JSON header is not an object")
        }

        var metadata: [String: String] = [:]
        var entries: [Entry] = []
        entries.reserveCapacity(object.count)
        for (name, value) in object {
            if name == "__metadata__" {
                guard let map = value as? [String: Any] else { throw headerError("__metadata__ is not an object") }
                for (key, item) in map {
                    guard let string = item as? String else {
                        throw headerError("__metadata__ value of '\(key)' is not a string")
                    }
                    metadata[key] = string
                }
                continue
            }
            entries.append(try parseEntry(name: name, value: value, path: path))
        }

        // Byte ranges must lie inside the data buffer and must not overlap (the format stores each tensor once).
        entries.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var previous: Entry?
        for entry in entries {
            guard entry.end <= dataLength else {
                throw SafeTensorsError.invalidTensor(
                    path: path, name: entry.name,
                    reason: "data_offsets [\(entry.begin), \(entry.end)] exceed the \(dataLength)-byte data buffer (truncated?)")
            }
            if let previous, entry.begin < previous.end {
                throw SafeTensorsError.invalidTensor(
                    path: path, name: entry.name,
                    reason: "data_offsets [\(entry.begin), \(entry.end)] overlap those of '\(previous.name)' [\(previous.begin), \(previous.end)]")
            }
            previous = entry
        }

        var file = SafeTensorsFile(metadata: metadata)
        let data = bytes.baseAddress.map { UnsafeRawPointer($0) + dataStart }
        for entry in entries {
            guard floatDtypes.contains(entry.dtype) else {
                file.skipped[entry.name] = "dtype \(entry.dtype) is not floating point; shape \(entry.shape) not loaded"
                continue
            }
            let tensor = Tensor(uninitialized: entry.shape)
            if tensor.count > 0, let data {
                convert(from: data + entry.begin, dtype: entry.dtype, count: tensor.count, into: tensor.pointer)
            }
            file.tensors[entry.name] = tensor
        }
        return file
    }

    private static func parseEntry(name: String, value: Any, path: String) throws -> Entry {
        func fail(_ reason: String) -> SafeTensorsError { .invalidTensor(path: path, name: name, reason: reason) }
        guard let info = value as? [String: Any] else { throw fail("the header entry is not an object") }
        guard let dtype = info["dtype"] as? String else { throw fail("missing or non-string \"dtype\"") }
        guard let elementSize = dtypeSizes[dtype] else { throw fail("unknown dtype \(dtype)") }
        guard let rawShape = info["shape"] as? [Any], let shape = nonNegativeIntegers(rawShape) else {
            throw fail("\"shape\" is missing or not an array of non-negative integers")
        }
        guard let rawOffsets = info["data_offsets"] as? [Any], let offsets = nonNegativeIntegers(rawOffsets),
              offsets.count == 2
        else { throw fail("\"data_offsets\" is missing or not two non-negative integers") }
        let (begin, end) = (offsets[0], offsets[1])
        guard begin <= end else { throw fail("data_offsets [\(begin), \(end)] are reversed") }

        var byteCount = elementSize
        for extent in shape {
            let (product, overflow) = byteCount.multipliedReportingOverflow(by: extent)
            guard !overflow else { throw fail("shape \(shape) is too large") }
            byteCount = product
        }
        guard end - begin == byteCount else {
            throw fail("data_offsets [\(begin), \(end)] span \(end - begin) bytes, but shape \(shape) of \(dtype) needs \(byteCount)")
        }
        return Entry(name: name, dtype: dtype, shape: shape, begin: begin, end: end)
    }

    /// The values as `Int`s when every one is a non-negative integer JSON number; `nil` otherwise.
    private static func nonNegativeIntegers(_ values: [Any]) -> [Int]? {
        var result: [Int] = []
        result.reserveCapacity(values.count)
        for value in values {
            // JSON numbers and booleans both arrive as NSNumber; a boolean's type encoding is "c" (char).
            if let number = value as? NSNumber, String(cString: number.objCType) == "c" { return nil }
            if let int = value as? Int {
                guard int >= 0 else { return nil }
                result.append(int)
            } else if let double = value as? Double, double >= 0, double == double.rounded(), double < 9.0e15 {
                result.append(Int(double))
            } else {
                return nil
            }
        }
        return result
    }

    /// Converts `count` little-endian elements of `dtype` at `source` (any alignment) to float32.
    private static func convert(from source: UnsafeRawPointer, dtype: String, count: Int, into out: UnsafeMutablePointer<Float>) {
        switch dtype {
        case "F32":
            // The mapped bytes need not be 4-byte aligned; a byte copy into the aligned storage handles that.
            UnsafeMutableRawPointer(out).copyMemory(from: source, byteCount: count * 4)
            #if _endian(big)
            for i in 0..<count { out[i] = Float(bitPattern: UInt32(littleEndian: out[i].bitPattern)) }
            #endif
        case "F16":
            for i in 0..<count {
                let bits = UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                out[i] = Float(bitPattern: halfToFloatBits(bits))
            }
        case "BF16":
            for i in 0..<count {
                let bits = UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                out[i] = Float(bitPattern: UInt32(bits) << 16)
            }
        case "F64":
            for i in 0..<count {
                let bits = UInt64(littleEndian: source.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))
                out[i] = Float(Double(bitPattern: bits))
            }
        default:
            preconditionFailure("SafeTensors.convert: dtype \(dtype) is not a float dtype")
        }
    }

    /// IEEE 754 binary16 → binary32 bit pattern, exact for every value (normals, subnormals, ±0, ±inf, NaN).
    /// Done by hand because `Float16` is unavailable on macOS x86_64.
    static func halfToFloatBits(_ h: UInt16) -> UInt32 {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = UInt32(h >> 10) & 0x1F
        var mantissa = UInt32(h & 0x3FF)
        if exponent == 0x1F { return sign | 0x7F80_0000 | (mantissa << 13) }  // inf / NaN
        if exponent != 0 { return sign | ((exponent + 112) << 23) | (mantissa << 13) }
        if mantissa == 0 { return sign }  // ±0
        // Subnormal half: normalise into a float32 normal.
        var e: UInt32 = 113
        while mantissa & 0x400 == 0 {
            mantissa <<= 1
            e -= 1
        }
        return sign | (e << 23) | ((mantissa & 0x3FF) << 13)
    }

    // MARK: Writing

    /// Writes `tensors` (as F32) and `metadata` to `url`, replacing any existing file atomically.
    ///
    /// Keys are sorted, so equal contents give byte-identical files; data follow in key order. The header is
    /// padded with spaces to a multiple of 8 bytes, keeping every tensor 4-byte aligned for readers that map the
    /// file. The bytes go to a temporary file in the same folder, which is flushed and then renamed over `url`:
    /// a crash leaves either the old file or the new one, never half of one.
    ///
    /// - Parameters:
    ///   - tensors: tensors of any shape (including `[]` and empty ones), by name; a name may not be empty or
    ///     `__metadata__`.
    ///   - metadata: stored as the `__metadata__` string map (omitted when empty).
    ///   - url: the destination file; its folder must exist.
    /// - Throws: `SafeTensorsError` when a name is invalid or the file cannot be written or renamed.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to url: URL) throws {
        let path = url.path
        for name in tensors.keys where name.isEmpty || name == "__metadata__" {
            throw SafeTensorsError.invalidTensor(path: path, name: name, reason: "this name is reserved or empty and cannot be written")
        }
        let names = tensors.keys.sorted()

        var header = "{"
        var parts: [String] = []
        if !metadata.isEmpty {
            let items = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            parts.append("\"__metadata__\":{\(items.joined(separator: ","))}")
        }
        var offset = 0
        for name in names {
            let tensor = tensors[name]!
            let bytes = tensor.count * 4
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            parts.append("\(jsonString(name)):{\"dtype\":\"F32\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + bytes)]}")
            offset += bytes
        }
        header += parts.joined(separator: ",") + "}"
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(UInt8(ascii: " ")) }

        let folder = url.deletingLastPathComponent()
        let temporary = folder.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let fd = open(temporary.path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard fd >= 0 else {
            throw SafeTensorsError.io(path: path, reason: "cannot create the temporary file '\(temporary.path)': \(String(cString: strerror(errno)))")
        }
        var closed = false
        var renamed = false
        defer {
            if !closed { close(fd) }
            if !renamed { unlink(temporary.path) }
        }

        func writeAll(_ pointer: UnsafeRawPointer, _ count: Int) throws {
            var written = 0
            while written < count {
                let n = systemWrite(fd, pointer + written, count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw SafeTensorsError.io(path: path, reason: "writing '\(temporary.path)' failed: \(String(cString: strerror(errno)))")
                }
                written += n
            }
        }

        var lengthPrefix = UInt64(headerBytes.count).littleEndian
        try withUnsafeBytes(of: &lengthPrefix) { try writeAll($0.baseAddress!, 8) }
        try headerBytes.withUnsafeBytes { try writeAll($0.baseAddress!, $0.count) }
        for name in names {
            let tensor = tensors[name]!
            guard tensor.count > 0 else { continue }
            #if _endian(big)
            let swapped = (0..<tensor.count).map { tensor.pointer[$0].bitPattern.littleEndian }
            try swapped.withUnsafeBytes { try writeAll($0.baseAddress!, $0.count) }
            #else
            try writeAll(UnsafeRawPointer(tensor.pointer), tensor.count * 4)
            #endif
        }
        // Data must reach the disk before the rename makes the file visible under its final name.
        guard fsync(fd) == 0 else {
            throw SafeTensorsError.io(path: path, reason: "flushing '\(temporary.path)' failed: \(String(cString: strerror(errno)))")
        }
        closed = true
        guard close(fd) == 0 else {
            throw SafeTensorsError.io(path: path, reason: "closing '\(temporary.path)' failed: \(String(cString: strerror(errno)))")
        }
        guard rename(temporary.path, path) == 0 else {
            throw SafeTensorsError.io(path: path, reason: "renaming '\(temporary.path)' into place failed: \(String(cString: strerror(errno)))")
        }
        renamed = true
    }

    /// Writes `file.tensors` and `file.metadata` (see `write(_:metadata:to:)`); `file.skipped` is not written.
    public static func write(_ file: SafeTensorsFile, to url: URL) throws {
        try write(file.tensors, metadata: file.metadata, to: url)
    }

    /// The C library's `write(2)`, named apart from `SafeTensors.write`.
    private static func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
        #if canImport(Glibc)
        return Glibc.write(fd, buffer, count)
        #else
        return Darwin.write(fd, buffer, count)
        #endif
    }

    /// A JSON string literal: quotes, backslashes and control characters escaped; other characters as UTF-8.
    /// (The package's one JSON string writer: the safetensors header and the options' JSON form use it.)
    package static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
