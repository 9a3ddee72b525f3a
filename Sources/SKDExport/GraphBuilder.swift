// Building an ONNX graph node by node: fresh value names, deduplicated constants, the layers the restoration
// models share (convolutions, linear layers, GELU, layer norms) and shape arithmetic that works for fixed and
// symbolic input sizes alike (`Shape` → integer ops → `Reshape`/`Slice`), so one graph builder serves both.

import Foundation
import SKDTensor

/// A problem that prevents an export; the message names the model, value or file.
public struct ONNXExportError: Error, CustomStringConvertible {
    /// The one-line message.
    public let description: String
    init(_ message: String) { description = message }
}

/// Parameters by state-dict name (the official PyTorch names), read as float arrays with their shapes.
struct ParameterSource {
    let tensors: [String: Tensor]

    /// Whether the state dict has `name`.
    func has(_ name: String) -> Bool { tensors[name] != nil }

    /// The tensor's shape.
    func shape(_ name: String) throws -> [Int] {
        guard let t = tensors[name] else { throw ONNXExportError("the model has no parameter '\(name)'") }
        return t.shape
    }

    /// The tensor's elements, row-major.
    func values(_ name: String) throws -> [Float] {
        guard let t = tensors[name] else { throw ONNXExportError("the model has no parameter '\(name)'") }
        return Array(UnsafeBufferPointer(start: t.pointer, count: t.count))
    }
}

/// Accumulates the nodes and constants of one graph.
final class GraphBuilder {
    private(set) var nodes: [ONNXNode] = []
    private(set) var initializers: [ONNXTensor] = []
    private var counter = 0
    private var intConstants: [[Int]: String] = [:]
    private var scalarIntConstants: [Int: String] = [:]
    private var floatConstants: [Float: String] = [:]
    private var usedNames = Set<String>()
    /// The parameters the layers read.
    let parameters: ParameterSource

    init(parameters: ParameterSource) { self.parameters = parameters }

    /// A value name not used before, derived from `hint`.
    func fresh(_ hint: String) -> String {
        counter += 1
        return "\(hint)_\(counter)"
    }

    /// Adds a node and returns its outputs' names.
    @discardableResult
    func node(_ op: String, _ inputs: [String], _ attributes: [(String, ONNXAttributeValue)] = [], outputs: Int = 1, hint: String? = nil) -> [String] {
        let base = hint ?? op.lowercased()
        let outs = (0..<outputs).map { _ in fresh(base) }
        nodes.append(ONNXNode(opType: op, name: fresh("n_" + op), inputs: inputs, outputs: outs,
                              attributes: attributes.map { ONNXAttribute(name: $0.0, value: $0.1) }))
        return outs
    }

    /// A one-output node.
    func op(_ op: String, _ inputs: String..., attributes: [(String, ONNXAttributeValue)] = [], hint: String? = nil) -> String {
        node(op, inputs, attributes, hint: hint)[0]
    }

    /// Registers a float constant under `name` (made unique) and returns the name.
    func floats(_ name: String, _ values: [Float], shape: [Int]) -> String {
        var unique = name
        while usedNames.contains(unique) { unique = fresh(name) }
        usedNames.insert(unique)
        initializers.append(ONNXTensor(name: unique, floats: values, shape: shape))
        return unique
    }

    /// A 1-D int64 constant (shared between uses).
    func ints(_ values: [Int]) -> String {
        if let name = intConstants[values] { return name }
        let name = fresh("const_i64")
        initializers.append(ONNXTensor(name: name, ints: values, shape: [values.count]))
        intConstants[values] = name
        return name
    }

    /// A 0-D int64 constant (shared between uses).
    func scalarInt(_ value: Int) -> String {
        if let name = scalarIntConstants[value] { return name }
        let name = fresh("const_scalar_i64")
        initializers.append(ONNXTensor(name: name, ints: [value], shape: []))
        scalarIntConstants[value] = name
        return name
    }

    /// A 0-D float constant (shared between uses).
    func scalarFloat(_ value: Float) -> String {
        if let name = floatConstants[value] { return name }
        let name = fresh("const_f32")
        initializers.append(ONNXTensor(name: name, floats: [value], shape: []))
        floatConstants[value] = name
        return name
    }

    /// A parameter as a graph constant under its state-dict name, optionally reshaped (same element count).
    func parameter(_ name: String, shape: [Int]? = nil) throws -> String {
        let values = try parameters.values(name)
        let stored = try parameters.shape(name)
        return floats(name, values, shape: shape ?? stored)
    }

    // MARK: - Shape arithmetic on `[1]` int64 tensors

    /// Dimension `axis` of `x` as a `[1]` int64 tensor.
    func dim(_ x: String, _ axis: Int) -> String {
        op("Shape", x, attributes: [("start", .int(axis)), ("end", .int(axis + 1))], hint: "dim")
    }

    /// `a · k` for a `[1]` int64 tensor.
    func mul(_ a: String, _ k: Int) -> String { k == 1 ? a : op("Mul", a, ints([k]), hint: "dim") }
    /// `a / k` (integer division) for a non-negative `[1]` int64 tensor.
    func div(_ a: String, _ k: Int) -> String { k == 1 ? a : op("Div", a, ints([k]), hint: "dim") }
    /// `a + k` for a `[1]` int64 tensor.
    func add(_ a: String, _ k: Int) -> String { k == 0 ? a : op("Add", a, ints([k]), hint: "dim") }

    /// A part of a shape: constant sizes or a `[1]`/`[n]` int64 tensor.
    enum ShapePart {
        case sizes([Int])
        case tensor(String)
    }

    /// The concatenation of `parts` as a 1-D int64 shape tensor.
    func shape(_ parts: [ShapePart]) -> String {
        if parts.allSatisfy({ if case .sizes = $0 { return true } else { return false } }) {
            return ints(parts.flatMap { if case .sizes(let s) = $0 { return s } else { return [] } })
        }
        let names = parts.map { part -> String in
            switch part {
            case .sizes(let s): return ints(s)
            case .tensor(let t): return t
            }
        }
        return node("Concat", names, [("axis", .int(0))], hint: "shape")[0]
    }

    /// `Reshape(x, shape)`.
    func reshape(_ x: String, _ parts: [ShapePart]) -> String { op("Reshape", x, shape(parts)) }

    /// `Transpose(x, perm)`.
    func transpose(_ x: String, _ perm: [Int]) -> String { op("Transpose", x, attributes: [("perm", .ints(perm))]) }

    // MARK: - Layers

    /// `nn.Conv2d` with the parameters `prefix.weight` `[O, I/g, k, k]` and, when present, `prefix.bias`.
    func conv(_ x: String, _ prefix: String, stride: Int = 1, padding: Int, groups: Int = 1, dilation: Int = 1) throws -> String {
        let shape = try parameters.shape(prefix + ".weight")
        guard shape.count == 4 else { throw ONNXExportError("'\(prefix).weight' has shape \(shape), not [O, I, k, k]") }
        var inputs = [x, try parameter(prefix + ".weight")]
        if parameters.has(prefix + ".bias") { inputs.append(try parameter(prefix + ".bias")) }
        return node("Conv", inputs, [("kernel_shape", .ints([shape[2], shape[3]])), ("strides", .ints([stride, stride])),
                                      ("pads", .ints([padding, padding, padding, padding])), ("group", .int(groups)),
                                      ("dilations", .ints([dilation, dilation]))], hint: prefix)[0]
    }

    /// A depthwise 3×3 convolution, padding 1 (groups = channels).
    func depthwiseConv(_ x: String, _ prefix: String) throws -> String {
        let shape = try parameters.shape(prefix + ".weight")
        return try conv(x, prefix, padding: 1, groups: shape[0])
    }

    /// `nn.ConvTranspose2d` (groups 1) with `prefix.weight` `[I, O, k, k]` and `prefix.bias`.
    func convTranspose(_ x: String, _ prefix: String, stride: Int) throws -> String {
        let shape = try parameters.shape(prefix + ".weight")
        var inputs = [x, try parameter(prefix + ".weight")]
        if parameters.has(prefix + ".bias") { inputs.append(try parameter(prefix + ".bias")) }
        return node("ConvTranspose", inputs, [("kernel_shape", .ints([shape[2], shape[3]])), ("strides", .ints([stride, stride]))],
                    hint: prefix)[0]
    }

    /// `nn.Linear` on the last axis: `x · (scale·W)ᵀ + scale·b`, with W `[out, in]` rows `rows` (all by default).
    func linear(_ x: String, _ prefix: String, rows: Range<Int>? = nil, scale: Float = 1, hint: String? = nil) throws -> String {
        let shape = try parameters.shape(prefix + ".weight")
        let (outFeatures, inFeatures) = (shape[0], shape[1])
        let r = rows ?? 0..<outFeatures
        let w = try parameters.values(prefix + ".weight")
        var t = [Float](repeating: 0, count: inFeatures * r.count)
        for (o, row) in r.enumerated() {
            for i in 0..<inFeatures { t[i * r.count + o] = w[row * inFeatures + i] * scale }
        }
        let suffix = hint ?? "weight_T"
        var y = op("MatMul", x, floats(prefix + "." + suffix, t, shape: [inFeatures, r.count]), hint: prefix)
        if parameters.has(prefix + ".bias") {
            let b = try parameters.values(prefix + ".bias")
            let bias = r.map { b[$0] * scale }
            let biasName = (hint.map { prefix + "." + $0 + "_bias" }) ?? (prefix + ".bias")
            y = op("Add", y, floats(biasName, bias, shape: [r.count]), hint: prefix)
        }
        return y
    }

    /// The exact GELU, `x·(1 + erf(x/√2))·½` (opset 17 has no Gelu operator), in the node order PyTorch exports, which
    /// ONNX Runtime's graph optimizer fuses into one Gelu kernel.
    func gelu(_ x: String) -> String {
        let e = op("Erf", op("Div", x, scalarFloat(1.4142135381698608)))
        return op("Mul", op("Mul", x, op("Add", e, scalarFloat(1))), scalarFloat(0.5), hint: "gelu")
    }

    /// `nn.LayerNorm` over the last axis (ε = 1e-5), `prefix.weight` and `prefix.bias`.
    func layerNormLast(_ x: String, _ prefix: String) throws -> String {
        node("LayerNormalization", [x, try parameter(prefix + ".weight"), try parameter(prefix + ".bias")],
             [("axis", .int(-1)), ("epsilon", .float(1e-5))], hint: prefix)[0]
    }

    /// Restormer's per-pixel LayerNorm over the channels of an NCHW map (ε = 1e-5, biased variance):
    /// WithBias `(x − μ)/√(σ²+ε)·w + b`, BiasFree `x/√(σ²+ε)·w`.
    func channelLayerNorm(_ x: String, _ prefix: String, withBias: Bool) throws -> String {
        let c = try parameters.shape(prefix + ".weight")[0]
        if withBias {
            // ONNX's LayerNormalization over the last axis of the NHWC view: one fused kernel in ONNX Runtime.
            let normed = node("LayerNormalization", [transpose(x, [0, 2, 3, 1]), try parameter(prefix + ".weight"), try parameter(prefix + ".bias")],
                              [("axis", .int(-1)), ("epsilon", .float(1e-5))])[0]
            return transpose(normed, [0, 3, 1, 2])
        }
        let mean = op("ReduceMean", x, attributes: [("axes", .ints([1])), ("keepdims", .int(1))])
        let centred = op("Sub", x, mean)
        let variance = op("ReduceMean", op("Mul", centred, centred), attributes: [("axes", .ints([1])), ("keepdims", .int(1))])
        let denominator = op("Sqrt", op("Add", variance, scalarFloat(1e-5)))
        let weight = try parameter(prefix + ".weight", shape: [c, 1, 1])
        return op("Mul", op("Div", x, denominator), weight, hint: prefix)
    }

    // MARK: - Padding to a size multiple

    /// Indices `0..<padded` reflected into `0..<size` as repeated reflect padding does (a triangle wave of period
    /// `2(size − 1)`): `[padded]` int64. `size`, `padded`: `[1]` int64.
    private func reflectIndices(size: String, padded: String) -> String {
        let range = op("Range", scalarInt(0), op("Squeeze", padded, ints([0])), scalarInt(1))
        let period = op("Max", op("Mul", op("Sub", size, ints([1])), ints([2])), ints([1]))
        let m = op("Mod", range, period)
        return op("Where", op("Less", m, size), m, op("Sub", period, m))
    }

    /// Pads an NCHW map at the bottom and right to `(paddedH, paddedW)` by repeated reflection (any amount).
    func reflectPadBottomRight(_ x: String, height: String, width: String, paddedH: String, paddedW: String) -> String {
        let rows = op("Gather", x, reflectIndices(size: height, padded: paddedH), attributes: [("axis", .int(2))])
        return op("Gather", rows, reflectIndices(size: width, padded: paddedW), attributes: [("axis", .int(3))], hint: "padded")
    }

    /// `ceil(n / multiple) · multiple` for a `[1]` int64 tensor.
    func roundUp(_ n: String, _ multiple: Int) -> String { mul(div(add(n, multiple - 1), multiple), multiple) }

    /// Crops an NCHW map to its top-left `height × width` (`[1]` int64 each).
    func cropTopLeft(_ x: String, height: String, width: String) -> String {
        op("Slice", x, ints([0, 0]), shape([.tensor(height), .tensor(width)]), ints([2, 3]), hint: "cropped")
    }
}
