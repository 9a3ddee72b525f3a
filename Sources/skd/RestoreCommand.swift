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

    @Option(help: ArgumentHelp("Pixel range the model works in: -1-1 (SwiftSKD training) or 0-1 (official released weights).", valueName: "range"))
    var range: PixelRange = .minusOneToOne

    @Option(help: ArgumentHelp("Restore in overlapping tiles of this side, bounding memory on large images. (default: whole images)", valueName: "pixels"))
    var tile: Int?

    @Option(help: ArgumentHelp("Overlap of neighbouring tiles; each tile keeps only its centre.", valueName: "pixels"))
    var tileOverlap = 32

    @Option(help: ArgumentHelp("Memory whole-image restoration may use, e.g. 4G or 512M; larger images are restored in tiles automatically. (default: half the RAM)", valueName: "size"))
    var maxMemory: String?

    @Flag(help: "Replace files already in the output folder (never the inputs). (default: off, such files are an error)")
    var overwrite = false

    func run() throws {
        try reportingErrors {
            try checkTiling(tile: tile, overlap: tileOverlap)
            let budget = try maxMemory.map { try parseMemorySize($0, option: "--max-memory") } ?? Double(ProcessInfo.processInfo.physicalMemory) / 2
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
            let sizes = try files.map { try ImageHeader.size(of: $0) }
            let folder = URL(fileURLWithPath: output)
            let destinations = try RestorePlan.destinations(for: files, in: folder, overwrite: overwrite)
            try checkCreatableFolder(output, option: "--output")
            let named = try NamedModel.load(model, architecture: try preset.map { try ModelSpec.preset($0) })
            let perPixel = ModelCost.inferenceBytesPerPixel(named.spec)
            let multiple = max(1, named.model.sizeMultiple)
            // Tiles for the images too large to restore at once, decided before any work.
            var tiles: [Int?] = []
            for (file, size) in zip(files, sizes) {
                tiles.append(try RestorePlan.tile(for: size, file: file, requested: tile, overlap: tileOverlap, bytesPerPixel: perPixel,
                                                  multiple: multiple, budget: budget))
            }
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            for ((file, destination), (size, tileSide)) in zip(zip(files, destinations), zip(sizes, tiles)) {
                if tile == nil, let tileSide {
                    printError(String(format: "skd: note: %@ (%dx%d) needs about %@ at once; restoring it in %d-pixel tiles to stay within %@ (--max-memory)",
                                      file.path, size.width, size.height, formatBytes(RestorePlan.wholeBytes(size, perPixel, multiple)), tileSide, formatBytes(budget)))
                }
                let image = try Image(contentsOf: file, channels: .rgb)
                let began = DispatchTime.now()
                let restored = Inference.restore(named.model, image.tensor(range: range), tile: tileSide, tileOverlap: tileOverlap)
                let ms = Double(DispatchTime.now().uptimeNanoseconds - began.uptimeNanoseconds) / 1e6
                try Image(tensor: restored, range: range).write(to: destination)
                print(String(format: "%@ -> %@ (%dx%d, %.0f ms)", file.path, destination.path, image.width, image.height, ms))
            }
        }
    }
}

/// Where restore writes and how it tiles, decided before any work.
enum RestorePlan {
    /// One PNG per input in `folder`: `<stem>.png`, or `<stem>_<ext>.png` when inputs share a stem (pic2.jpg and
    /// pic2.png). Refuses a destination that is an input, or any existing file unless `overwrite`.
    static func destinations(for files: [URL], in folder: URL, overwrite: Bool) throws -> [URL] {
        let fm = FileManager.default
        let stems = files.map { $0.deletingPathExtension().lastPathComponent }
        let stemCounts = Dictionary(grouping: stems, by: { $0 }).mapValues(\.count)
        let names = zip(files, stems).map { file, stem in
            stemCounts[stem]! > 1 ? "\(stem)_\(file.pathExtension.lowercased()).png" : "\(stem).png"
        }
        if let duplicate = Dictionary(grouping: names, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw RunConfigurationError("several inputs would be written to \(folder.appendingPathComponent(duplicate).path) (inputs of the same name in different folders); restore them into separate --output folders")
        }
        func identity(_ url: URL) -> String { url.resolvingSymlinksInPath().standardizedFileURL.path }
        let inputs = Set(files.map(identity))
        var out: [URL] = []
        for name in names {
            let destination = folder.appendingPathComponent(name)
            if inputs.contains(identity(destination)) {
                throw RunConfigurationError("\(destination.path) is an input; restoring would overwrite it: choose another --output folder")
            }
            var isDirectory: ObjCBool = false
            if fm.fileExists(atPath: destination.path, isDirectory: &isDirectory) {
                if isDirectory.boolValue { throw RunConfigurationError("\(destination.path) is a folder; choose another --output folder") }
                if !overwrite {
                    throw RunConfigurationError("\(destination.path) already exists; give --overwrite to replace it, or choose another --output folder")
                }
            }
            out.append(destination)
        }
        return out
    }

    /// Bytes of whole-image inference on an image of `size` (padded to `multiple`).
    static func wholeBytes(_ size: (width: Int, height: Int), _ perPixel: Double, _ multiple: Int) -> Double {
        let h = (size.height + multiple - 1) / multiple * multiple, w = (size.width + multiple - 1) / multiple * multiple
        return Double(h) * Double(w) * perPixel
    }

    /// The tile side for one image: the requested one, none when whole-image inference fits `budget`, else the
    /// largest multiple of the model's size multiple whose tiles fit next to the full-size buffers.
    ///
    /// - Throws: when even tiles cannot fit.
    static func tile(for size: (width: Int, height: Int), file: URL, requested: Int?, overlap: Int, bytesPerPixel: Double,
                     multiple: Int, budget: Double) throws -> Int? {
        if let requested { return requested }
        if wholeBytes(size, bytesPerPixel, multiple) <= budget { return nil }
        // The image, the restored sum, the weights and the output stay whole: about 16 floats per pixel.
        let fixed = Double(size.width) * Double(size.height) * 64
        let side = (budget - fixed) > 0 ? Int(((budget - fixed) / bytesPerPixel).squareRoot()) / multiple * multiple : 0
        guard side > overlap, side >= multiple else {
            throw RunConfigurationError("\(file.path) (\(size.width)x\(size.height)) does not fit in \(formatBytes(budget)) (--max-memory) even in tiles of \(max(multiple, overlap + 1)) pixels with --tile-overlap \(overlap); raise --max-memory or lower --tile-overlap")
        }
        return side
    }
}
