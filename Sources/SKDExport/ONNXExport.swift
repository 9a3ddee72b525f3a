// `skd export`'s engine: a restoration network as a standard ONNX model (opset 17), built from its configuration
// (`ModelSpec`) and its state dict (official PyTorch parameter names), written atomically.

import Foundation
import SKDModels
import SKDTensor

/// The input size an exported graph accepts.
public enum ONNXInputSize: Equatable, Sendable {
    /// A fixed `[1, C, height, width]` input; ONNX Runtime rejects other sizes.
    case fixed(height: Int, width: Int)
    /// Symbolic `[batch, C, height, width]`: any batch and any size (padded to the model's multiple inside the graph).
    case dynamic
}

/// Exports Restormer, Uformer and DRSformer networks to ONNX.
///
/// The graph is the inference function of the network: for Restormer and DRSformer, `Inference.restore` (pad to a
/// multiple of 8 — reflect, or zeros when the padding is not smaller than the image — run, crop back); for Uformer,
/// `Uformer.forward` (repeated reflect padding to its size multiple, run, crop back). Input `input`
/// `[N, C_in, H, W]` float32, output `output` `[N, C_out, H, W]` float32, in the pixel range the model was
/// trained in (SwiftSKD trains in [−1, 1]). Parameters are graph initializers named by their state-dict names.
public enum ONNXExport {
    /// The `ai.onnx` opset the graphs use.
    public static let opset = 17

    /// The serialised ONNX model of a network.
    ///
    /// - Parameters:
    ///   - spec: the architecture and its constructor arguments.
    ///   - stateDict: the parameters by state-dict name (`Module.stateDict()`); shapes must fit `spec`.
    ///   - sizeMultiple: the model's `sizeMultiple` (8 for Restormer and DRSformer; Uformer's depends on its windows).
    ///   - size: a fixed input size (each side at least 2) or `.dynamic`.
    /// - Returns: the bytes of a `.onnx` file.
    /// - Throws: `ONNXExportError` for a bad size or a missing or mis-shaped parameter.
    public static func serializedModel(spec: ModelSpec, stateDict: [String: Tensor], sizeMultiple: Int, size: ONNXInputSize) throws -> [UInt8] {
        guard sizeMultiple >= 1 else { throw ONNXExportError("size multiple \(sizeMultiple) must be at least 1") }
        var fixed: (height: Int, width: Int)? = nil
        if case let .fixed(height, width) = size {
            for (name, value) in [("height", height), ("width", width)] where value < 2 || value > 65536 {
                throw ONNXExportError("--\(name) \(value) must be between 2 and 65536 pixels")
            }
            fixed = (height, width)
        }
        let builder = GraphBuilder(parameters: ParameterSource(tensors: stateDict))
        let input = "input"
        // The configuration is read under the official argument names, so Swift renames do not reach the exporter.
        let arguments = try OfficialArguments(spec)
        let inChannels: Int, outChannels: Int, result: String
        switch spec.architecture {
        case "restormer":
            (inChannels, outChannels) = (try arguments.int("inp_channels"), try arguments.int("out_channels"))
            result = try builder.paddedForInference(input, multiple: sizeMultiple, fixed: fixed) { try builder.restormer($0, arguments: arguments) }
        case "uformer":
            (inChannels, outChannels) = (try arguments.int("dd_in"), try arguments.int("in_chans"))
            result = try builder.uformer(input, arguments: arguments, multiple: sizeMultiple, fixed: fixed)
        case "drsformer":
            (inChannels, outChannels) = (try arguments.int("inp_channels"), try arguments.int("out_channels"))
            result = try builder.paddedForInference(input, multiple: sizeMultiple, fixed: fixed) { try builder.drsformer($0, arguments: arguments) }
        default:
            throw ONNXExportError("ONNX export supports restormer, uformer and drsformer, not \(spec.architecture)")
        }
        // The result gets the graph output's name through an Identity.
        builder.node("Identity", [result], [], hint: "unused")
        var nodes = builder.nodes
        nodes[nodes.count - 1].outputs = ["output"]
        let dims: (ONNXDimension, ONNXDimension, ONNXDimension) = fixed.map { (.value(1), .value($0.height), .value($0.width)) }
            ?? (.symbol("batch"), .symbol("height"), .symbol("width"))
        let model = ONNXModel(
            producerVersion: "1",
            docString: "\(spec.architecture) exported by SwiftSKD `skd export`; input and output in the pixel range the model was trained in (SwiftSKD: [-1, 1]).",
            graphName: spec.architecture,
            nodes: nodes,
            initializers: builder.initializers,
            inputs: [ONNXValueInfo(name: input, type: .float, shape: [dims.0, .value(inChannels), dims.1, dims.2])],
            outputs: [ONNXValueInfo(name: "output", type: .float, shape: [dims.0, .value(outChannels), dims.1, dims.2])],
            metadata: [("swiftskd.config", spec.jsonString()), ("swiftskd.size_multiple", "\(sizeMultiple)")])
        return model.serialized()
    }

    /// Exports `model` (its state dict and `sizeMultiple`) to `url`, atomically: the bytes go to a temporary file
    /// in the same folder, which is then renamed over `url`.
    ///
    /// - Throws: `ONNXExportError` (see `serializedModel`), or naming `url` when it cannot be written.
    public static func write(_ model: any TappedModel, spec: ModelSpec, size: ONNXInputSize, to url: URL) throws {
        let bytes = try serializedModel(spec: spec, stateDict: model.stateDict(), sizeMultiple: model.sizeMultiple, size: size)
        let folder = url.deletingLastPathComponent()
        let temporary = folder.appendingPathComponent(".\(url.lastPathComponent).\(ProcessInfo.processInfo.processIdentifier).tmp")
        do {
            try Data(bytes).write(to: temporary)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw ONNXExportError("\(url.path): cannot write (\((error as NSError).localizedDescription))")
        }
        guard rename(temporary.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temporary)
            throw ONNXExportError("\(url.path): cannot write (\(reason))")
        }
    }
}
