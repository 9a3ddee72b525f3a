// The subset of ONNX's protobuf messages the exporter writes, encoded with ProtobufWriter.
//
// Field numbers and enum values are those of onnx/onnx `onnx/onnx.proto` (Apache-2.0): ModelProto, GraphProto,
// NodeProto, AttributeProto, TensorProto, ValueInfoProto, TypeProto.Tensor, TensorShapeProto, OperatorSetIdProto.

import Foundation

/// An ONNX tensor element type (`TensorProto.DataType`).
enum ONNXElementType: Int {
    case float = 1, int64 = 7, bool = 9
}

/// A constant tensor (`TensorProto`), stored as `raw_data` (little-endian).
struct ONNXTensor {
    /// The tensor's name in the graph.
    var name: String
    /// The element type.
    var type: ONNXElementType
    /// The shape; `[]` for a scalar.
    var dims: [Int]
    /// The elements as little-endian bytes, row-major.
    var raw: [UInt8]

    /// A float32 tensor of `shape` (`values.count` = product of `shape`).
    init(name: String, floats values: [Float], shape: [Int]) {
        precondition(values.count == shape.reduce(1, *), "ONNXTensor \(name): \(values.count) values for shape \(shape)")
        self.name = name
        type = .float
        dims = shape
        raw = []
        raw.reserveCapacity(values.count * 4)
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { raw.append(contentsOf: $0) } }
    }

    /// An int64 tensor of `shape` (`values.count` = product of `shape`).
    init(name: String, ints values: [Int], shape: [Int]) {
        precondition(values.count == shape.reduce(1, *), "ONNXTensor \(name): \(values.count) values for shape \(shape)")
        self.name = name
        type = .int64
        dims = shape
        raw = []
        raw.reserveCapacity(values.count * 8)
        for v in values { withUnsafeBytes(of: Int64(v).littleEndian) { raw.append(contentsOf: $0) } }
    }

    func encode(_ w: inout ProtobufWriter) {
        w.packedInts(1, dims)
        w.int(2, type.rawValue)
        w.string(8, name)
        w.data(9, raw)
    }
}

/// A node attribute (`AttributeProto`).
enum ONNXAttributeValue {
    case int(Int)
    case float(Float)
    case ints([Int])
    case string(String)
    case tensor(ONNXTensor)
}

/// A named attribute of a node.
struct ONNXAttribute {
    var name: String
    var value: ONNXAttributeValue

    func encode(_ w: inout ProtobufWriter) {
        w.string(1, name)
        switch value {
        case .float(let f): w.float(2, f); w.int(20, 1)
        case .int(let i): w.int(3, i); w.int(20, 2)
        case .string(let s): w.string(4, s); w.int(20, 3)
        case .tensor(let t): w.message(5) { t.encode(&$0) }; w.int(20, 4)
        case .ints(let list): w.packedInts(8, list); w.int(20, 7)
        }
    }
}

/// One operator application (`NodeProto`), in the default (`ai.onnx`) domain.
struct ONNXNode {
    var opType: String
    var name: String
    var inputs: [String]
    var outputs: [String]
    var attributes: [ONNXAttribute]

    func encode(_ w: inout ProtobufWriter) {
        for i in inputs { w.string(1, i) }
        for o in outputs { w.string(2, o) }
        w.string(3, name)
        w.string(4, opType)
        for a in attributes { w.message(5) { a.encode(&$0) } }
    }
}

/// One dimension of a graph input or output: a fixed size or a named symbol.
enum ONNXDimension: Equatable {
    /// A fixed size.
    case value(Int)
    /// A symbolic size (`dim_param`), e.g. `"height"`.
    case symbol(String)
}

/// A typed graph input or output (`ValueInfoProto` with a tensor type).
struct ONNXValueInfo {
    var name: String
    var type: ONNXElementType
    var shape: [ONNXDimension]

    func encode(_ w: inout ProtobufWriter) {
        w.string(1, name)
        w.message(2) { type in
            type.message(1) { tensor in
                tensor.int(1, self.type.rawValue)
                tensor.message(2) { shape in
                    for d in self.shape {
                        shape.message(1) { dim in
                            switch d {
                            case .value(let v): dim.int(1, v)
                            case .symbol(let s): dim.string(2, s)
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A whole model (`ModelProto` holding one `GraphProto`).
struct ONNXModel {
    /// The ONNX IR version; 8 goes with opset 17.
    var irVersion = 8
    /// The `ai.onnx` opset the graph's operators are taken from.
    var opset = 17
    var producerName = "SwiftSKD"
    var producerVersion = ""
    var docString = ""
    var graphName: String
    var nodes: [ONNXNode]
    var initializers: [ONNXTensor]
    var inputs: [ONNXValueInfo]
    var outputs: [ONNXValueInfo]
    /// `metadata_props` key–value pairs (e.g. the model's configuration as JSON).
    var metadata: [(String, String)]

    /// The serialised model (a `.onnx` file's bytes).
    func serialized() -> [UInt8] {
        var w = ProtobufWriter()
        w.int(1, irVersion)
        w.string(2, producerName)
        if !producerVersion.isEmpty { w.string(3, producerVersion) }
        if !docString.isEmpty { w.string(6, docString) }
        w.message(7) { g in
            for n in nodes { g.message(1) { n.encode(&$0) } }
            g.string(2, graphName)
            for t in initializers { g.message(5) { t.encode(&$0) } }
            for i in inputs { g.message(11) { i.encode(&$0) } }
            for o in outputs { g.message(12) { o.encode(&$0) } }
        }
        w.message(8) { op in
            op.string(1, "")
            op.int(2, opset)
        }
        for (k, v) in metadata {
            w.message(14) { e in
                e.string(1, k)
                e.string(2, v)
            }
        }
        return w.bytes
    }
}
