// `skd reference-check`: recompute a reference file of the official PyTorch code (a model or a loss) and print
// the relative error of every stored tensor.

import ArgumentParser
import Foundation
import SwiftSKD

struct ReferenceCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reference-check",
        abstract: "Compare SwiftSKD with reference outputs of the official PyTorch code (model or loss .safetensors files).",
        discussion: "Prints one line per compared tensor with its relative error ‖ours − ref‖ / ‖ref‖; exits with status 4 when any exceeds the tolerance.")

    @Argument(help: ArgumentHelp("Reference files (e.g. ../shared/golden/*.safetensors).", valueName: "file"))
    var files: [String]

    @Option(help: ArgumentHelp("The largest relative error accepted per tensor.", valueName: "bound"))
    var tolerance = 1e-4

    func run() throws {
        let failures = try reportingErrors { () -> Int in
            guard tolerance > 0 else { throw RunConfigurationError("--tolerance must be positive") }
            var failures = 0
            for path in files {
                let url = URL(fileURLWithPath: path)
                let file = try SafeTensors.read(url)
                let results: [ReferenceComparison]
                if LossReferenceCheck.kind(of: file) != nil {
                    // Scalar losses are held to a tenth of the tensor tolerance, as the parity tests do.
                    results = try LossReferenceCheck.run(file, name: url.lastPathComponent, tolerance: tolerance, lossTolerance: tolerance / 10)
                } else if ModelReferenceCheck.isModelFile(file) {
                    results = try ModelReferenceCheck.run(file, name: url.lastPathComponent, tolerance: tolerance)
                } else {
                    throw RunConfigurationError("\(url.path): neither a model reference (input + config with arch) nor a loss reference file")
                }
                let width = results.map(\.name.count).max() ?? 0
                for r in results {
                    let pad = String(repeating: " ", count: width - r.name.count)
                    print(String(format: "%@  %@%@  %.3e  %@", url.lastPathComponent, r.name, pad, r.relativeError, r.passed ? "ok" : "FAIL (> \(r.tolerance))"))
                }
                let bad = results.filter { !$0.passed }.count
                failures += bad
                print("\(url.lastPathComponent): \(results.count - bad) of \(results.count) tensors within tolerance")
            }
            return failures
        }
        if failures > 0 { throw ExitCode(ExitStatus.referenceMismatch) }
    }
}
