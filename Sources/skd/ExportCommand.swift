// `skd export`: a trained model as a standard ONNX file (opset 17), fixed-size or with symbolic height and width.

import ArgumentParser
import Foundation
import SKDExport
import SwiftSKD

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a trained Restormer, Uformer or DRSformer as an ONNX model (opset 17) for ONNX Runtime and other runtimes.",
        discussion: """
        The graph takes `input` [N, C, H, W] float32 in the pixel range the model was trained in (SwiftSKD trains \
        in [-1, 1]) and returns `output` of the same shape; it pads to the model's size multiple and crops back, \
        as `skd restore` does.
        """)

    @Argument(help: ArgumentHelp("The model: a weights file, checkpoint or run folder (as skd restore --model).", valueName: "model"))
    var model: String

    @Option(help: ArgumentHelp("The ONNX file to write. (required)", valueName: "file"))
    var onnx: String

    @Option(help: ArgumentHelp("The architecture when the weights file names none, e.g. restormer. (default: the one the file names)", valueName: "preset"))
    var preset: String?

    @Option(help: ArgumentHelp("Fixed input height; give --width too. (default: --dynamic)", valueName: "pixels"))
    var height: Int?

    @Option(help: ArgumentHelp("Fixed input width; give --height too. (default: --dynamic)", valueName: "pixels"))
    var width: Int?

    @Flag(help: "Symbolic batch, height and width: one file for every image size. (default when no --height/--width)")
    var dynamic = false

    @Flag(help: "Replace an existing file at --onnx (never the model). (default: off, an existing file is an error)")
    var overwrite = false

    /// The input size the options ask for.
    func inputSize() throws -> ONNXInputSize {
        switch (height, width, dynamic) {
        case (nil, nil, _): return .dynamic
        case (.some, .some, true): throw RunConfigurationError("--dynamic and --height/--width exclude each other; give one or the other")
        case let (.some(h), .some(w), false): return .fixed(height: h, width: w)
        case (.some, nil, _): throw RunConfigurationError("--height needs --width (or use --dynamic)")
        case (nil, .some, _): throw RunConfigurationError("--width needs --height (or use --dynamic)")
        }
    }

    func run() throws {
        try reportingErrors {
            let size = try inputSize()
            if case let .fixed(h, w) = size {
                for (option, value) in [("--height", h), ("--width", w)] where value < 2 || value > 65536 {
                    throw RunConfigurationError("\(option) \(value) must be between 2 and 65536 pixels")
                }
            }
            let destination = URL(fileURLWithPath: onnx)
            try checkWritableFile(onnx, option: "--onnx")
            func identity(_ url: URL) -> String { url.resolvingSymlinksInPath().standardizedFileURL.path }
            if identity(destination) == identity(URL(fileURLWithPath: model)) {
                throw RunConfigurationError("--onnx \(destination.path) is the model; exporting would overwrite it: choose another file")
            }
            if FileManager.default.fileExists(atPath: destination.path), !overwrite {
                throw RunConfigurationError("--onnx \(destination.path) already exists; give --overwrite to replace it, or choose another file")
            }
            let named = try NamedModel.load(model, architecture: try preset.map { try ModelSpec.preset($0) })
            if let file = named.file, identity(file) == identity(destination) {
                throw RunConfigurationError("--onnx \(destination.path) is the model's weights file; exporting would overwrite it: choose another file")
            }
            do {
                try ONNXExport.write(named.model, spec: named.spec, size: size, to: destination)
            } catch let error as ONNXExportError {
                throw RunConfigurationError("\(named.file?.path ?? model): \(error.description)")
            }
            let bytes = (try? FileManager.default.attributesOfItem(atPath: destination.path)[.size] as? Int) ?? 0
            let shape: String
            switch size {
            case .dynamic: shape = "[batch, C, height, width]"
            case let .fixed(h, w): shape = "[1, C, \(h), \(w)]"
            }
            print("\(named.spec.architecture) -> \(destination.path) (ONNX opset \(ONNXExport.opset), input \(shape), \(formatBytes(Double(bytes))))")
        }
    }
}
