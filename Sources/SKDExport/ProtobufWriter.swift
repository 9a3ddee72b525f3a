// A minimal protocol-buffers encoder: exactly the wire types ONNX's messages need (varint, 32-bit, length-delimited).
//
// Why not apple/swift-protobuf: the exporter writes eight ONNX message types and never reads one back; the generated
// `onnx.pb.swift` plus the SwiftProtobuf runtime would add several minutes of release compilation to every CI run
// for what is ~100 lines of encoding here. Field numbers follow onnx/onnx `onnx/onnx.proto` (Apache-2.0); the
// parity test checks the result by loading it in ONNX Runtime (see Docs/user-guide.md, "Ship the student").

import Foundation

/// Appends protobuf-encoded fields to a byte buffer (proto3 wire format, fields written in the order called).
struct ProtobufWriter {
    /// The encoded bytes so far.
    private(set) var bytes: [UInt8] = []

    /// Wire types of the protobuf encoding.
    private enum WireType: UInt64 {
        case varint = 0, fixed32 = 5, lengthDelimited = 2
    }

    private mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    private mutating func key(_ field: Int, _ type: WireType) {
        varint(UInt64(field) << 3 | type.rawValue)
    }

    /// An `int64`/`int32`/enum field (negative values as ten-byte two's complement, as protobuf does).
    mutating func int(_ field: Int, _ value: Int) {
        key(field, .varint)
        varint(UInt64(bitPattern: Int64(value)))
    }

    /// A `float` field.
    mutating func float(_ field: Int, _ value: Float) {
        key(field, .fixed32)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// A `bytes` field.
    mutating func data(_ field: Int, _ value: [UInt8]) {
        key(field, .lengthDelimited)
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    /// A `string` field (UTF-8).
    mutating func string(_ field: Int, _ value: String) { data(field, Array(value.utf8)) }

    /// An embedded message field.
    mutating func message(_ field: Int, _ body: (inout ProtobufWriter) -> Void) {
        var inner = ProtobufWriter()
        body(&inner)
        data(field, inner.bytes)
    }

    /// A packed `repeated int64` field.
    mutating func packedInts(_ field: Int, _ values: [Int]) {
        var inner = ProtobufWriter()
        for v in values { inner.varint(UInt64(bitPattern: Int64(v))) }
        data(field, inner.bytes)
    }

    /// A packed `repeated float` field.
    mutating func packedFloats(_ field: Int, _ values: [Float]) {
        var raw = [UInt8]()
        raw.reserveCapacity(values.count * 4)
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { raw.append(contentsOf: $0) } }
        data(field, raw)
    }
}
