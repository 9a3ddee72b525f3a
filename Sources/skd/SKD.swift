// `skd`: train, distil, evaluate and apply image-restoration transformers from the command line.

import ArgumentParser
import Foundation
import SwiftSKD

@main
struct SKD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "skd",
        abstract: "Soft knowledge distillation for image-restoration transformers (Restormer, Uformer, DRSformer) on the CPU.",
        discussion: """
        Typical use: `skd train` a teacher (or use released weights), `skd distill` it into a small student, \
        `skd eval` both, `skd restore` images with the student. `skd demo` runs the whole chain on photographs \
        shipped by Debian's mate-backgrounds package. Every training option can also come from a YAML file \
        (--config); flags override the file and `--set key.path=value` overrides both. See Docs/user-guide.md.
        """,
        subcommands: [TrainCommand.self, DistillCommand.self, EvalCommand.self, RestoreCommand.self, InfoCommand.self,
                      ReferenceCheckCommand.self, PlotCommand.self, DemoCommand.self, StudyCommand.self,
                      ExportCommand.self])

    /// As ArgumentParser's `main()`, except that usage errors (unknown options, missing or malformed values) exit
    /// with status 2 like every other bad input, in one line, instead of ArgumentParser's 64.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            if exitCode(for: error) == .validationFailure {
                let message = SKD.message(for: error).split(whereSeparator: \.isNewline).joined(separator: " ")
                printError("skd: error: \(message) (see skd --help)")
                Foundation.exit(ExitStatus.badInput)
            }
            exit(withError: error)
        }
    }
}
