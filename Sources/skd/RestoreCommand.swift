// `skd restore`: images in, restored images out, at any size (padded to the model's multiple and cropped back),
// optionally in overlapping tiles.

import ArgumentParser
import Dispatch
import Foundation
import SwiftSKD

struct RestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore image files or folders with a trained model; writes PNGs of the same names.")

    @Argument(help: ArgumentHelp("PNG/JPEG files or folders of them.", valueName: "input"))
    var inputs: [String]

    @Option(help: ArgumentHelp("The model: a weights file, checkpoint or run folder. (required)", valueName: "path"))
    var model: String

    @Option(help: ArgumentHelp("The architecture when the weights file names none, e.g. restormer. (default: the one the file names)", valueName: "preset"))
    var preset: String?

    @Option(name: [.short, .long], help: ArgumentHelp("The folder for the restored images (created if missing). (required)", valueName: "folder"))
    var output: String

    @Option(help: ArgumentHelp("Pixel range the model works in: -1-1 (SwiftSKD training) or 0-1 (official released weights). (default: -1-1)", valueName: "range"))
    var range: PixelRange = .minusOneToOne

    @Option(help: ArgumentHelp("Restore in overlapping tiles of this side, bounding memory on large images. (default: whole images)", valueName: "pixels"))
    var tile: Int?

    @Option(help: ArgumentHelp("Overlap of neighbouring tiles; each tile keeps only its centre. (default: 32)", valueName: "pixels"))
    var tileOverlap = 32

    func run() throws {
        try reportingErrors {
            if let tile, tile <= tileOverlap { throw RunConfigurationError("--tile \(tile) must exceed --tile-overlap \(tileOverlap)") }
            guard tileOverlap >= 0 else { throw RunConfigurationError("--tile-overlap must be ≥ 0") }
            // Every input is listed and its header read before the model runs on any of them.
            var files: [URL] = []
            for input in inputs {
                let url = URL(fileURLWithPath: input)
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
                    throw RunConfigurationError("\(url.path): no such file or folder")
                }
                if isDirectory.boolValue {
                    let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
                    let images = names.filter { !$0.hasPrefix(".") && ImageFormat(pathExtension: ($0 as NSString).pathExtension) != nil }
                        .sorted { $0.compare($1, options: .numeric) == .orderedAscending }
                    if images.isEmpty { throw RunConfigurationError("\(url.path): no PNG or JPEG images") }
                    files += images.map { url.appendingPathComponent($0) }
                } else {
                    files.append(url)
                }
            }
            for file in files { _ = try ImageHeader.size(of: file) }
            let stems = files.map { $0.deletingPathExtension().lastPathComponent }
            if let duplicate = Dictionary(grouping: stems, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
                throw RunConfigurationError("several inputs are named '\(duplicate)'; their outputs would overwrite each other")
            }
            let named = try NamedModel.load(model, architecture: try preset.map { try ModelSpec.preset($0) })
            let folder = URL(fileURLWithPath: output)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            for (file, stem) in zip(files, stems) {
                let image = try Image(contentsOf: file, channels: .rgb)
                let began = DispatchTime.now()
                let restored = Inference.restore(named.model, image.tensor(range: range), tile: tile, tileOverlap: tileOverlap)
                let ms = Double(DispatchTime.now().uptimeNanoseconds - began.uptimeNanoseconds) / 1e6
                let destination = folder.appendingPathComponent(stem + ".png")
                try Image(tensor: restored, range: range).write(to: destination)
                print(String(format: "%@ -> %@ (%dx%d, %.0f ms)", file.path, destination.path, image.width, image.height, ms))
            }
        }
    }
}
