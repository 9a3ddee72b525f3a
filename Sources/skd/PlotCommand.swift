// `skd plot`: (re)draw a run's training curves from its log.jsonl.

import ArgumentParser
import Foundation
import SwiftSKD

struct PlotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot",
        abstract: "Draw a run's loss terms (log scale) and validation PSNR over iterations as a PNG.")

    @Argument(help: ArgumentHelp("A run folder (or its log.jsonl).", valueName: "run"))
    var runFolder: String

    @Option(name: [.short, .long], help: ArgumentHelp("The PNG to write. (default: <run>/training.png)", valueName: "file"))
    var output: String?

    func run() throws {
        try reportingErrors {
            var log = URL(fileURLWithPath: runFolder)
            if !log.path.hasSuffix(".jsonl") { log = log.appendingPathComponent("log.jsonl") }
            guard FileManager.default.fileExists(atPath: log.path) else { throw RunConfigurationError("\(log.path): no such log") }
            let folder = log.deletingLastPathComponent()
            let destination = output.map { URL(fileURLWithPath: $0) } ?? folder.appendingPathComponent("training.png")
            try checkWritableFile(destination.path, option: "--output")
            try TrainingPlot.render(log: log, title: folder.lastPathComponent).write(to: destination)
            print(destination.path)
        }
    }
}
