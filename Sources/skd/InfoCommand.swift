// `skd info`: what a preset or a weights file holds — architecture, parameters, GMACs at a size, taps.

import ArgumentParser
import Foundation
import SwiftSKD

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Show the architecture, parameter count and GMACs of presets or trained weights.",
        discussion: "Presets: \(ModelSpec.presetNames.joined(separator: ", ")).")

    @Argument(help: ArgumentHelp("Preset names, weights files, checkpoint or run folders.", valueName: "model"))
    var models: [String] = []

    @Flag(help: "Print the CPU, its vector features, the BLAS library and the kernels in use, and warn when they are below the CPU. (default: off)")
    var system = false

    @Option(help: ArgumentHelp("Height of the input GMACs are counted for.", valueName: "pixels"))
    var height = 256

    @Option(help: ArgumentHelp("Width of the input GMACs are counted for.", valueName: "pixels"))
    var width = 256

    @Flag(help: "Also print each network's full description as JSON. (default: off)")
    var json = false

    func run() throws {
        try reportingErrors {
            if system { print(systemReport()) }
            if models.isEmpty {
                guard system else { throw RunConfigurationError("name at least one model (a preset, weights file or run folder), or pass --system") }
                return
            }
            for (flag, value) in [("--height", height), ("--width", width)] where !(1...ModelCost.maximumSide).contains(value) {
                throw RunConfigurationError("\(flag) \(value) must lie in 1...\(ModelCost.maximumSide)")
            }
            var table = TextTable(header: ["model", "architecture", "params (M)", "GMACs@\(height)x\(width)", "taps"])
            var descriptions: [String] = []
            for argument in models {
                let named = try NamedModel.load(argument, allowPreset: true)
                let gmacs = Double(try ModelCost.multiplyAccumulates(named.model, height: height, width: width)) / 1e9
                table.rows.append([argument, named.spec.architecture, String(format: "%.3f", Double(named.model.parameterCount) / 1e6),
                                   String(format: "%.2f", gmacs), "\(named.model.tapNames.count)"])
                descriptions.append("\(argument): \(named.spec.jsonString())")
            }
            print(table.render())
            if json { print(descriptions.joined(separator: "\n")) }
        }
    }
}

/// `skd info --system`: what runs the numbers — CPU, features, BLAS library and core, threads, row kernels.
func systemReport() -> String {
    let selection = BLAS.kernelSelection
    var lines = [
        "cpu: \(selection.cpu)",
        "cpu vector level: \(selection.cpu.vectorLevel); features: \(selection.cpu.features.names.joined(separator: " "))",
        "blas: \(selection.library)",
        "blas core: \(selection.coreInUse ?? "unknown")" + (selection.coreLevel.map { " (\($0))" } ?? "")
            + "; at load: \(selection.coreAtLoad ?? "unknown"); \(selection.note)",
        "threads: BLAS \(BLAS.threads), kernels \(Parallel.threads)",
    ]
    if let warning = selection.warning { lines.append(warning) }
    return lines.joined(separator: "\n")
}
