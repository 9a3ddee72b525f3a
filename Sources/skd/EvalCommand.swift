// `skd eval`: PSNR/SSIM (RGB and Y), parameters, GMACs and time per image of one or more models over a
// paired folder or a clean folder with a named degradation.

import ArgumentParser
import Foundation
import SwiftSKD

/// One row of the evaluation table.
struct EvaluationRow: Codable {
    var model: String
    var psnr: Double
    var ssim: Double
    var psnrY: Double
    var ssimY: Double
    /// Parameters (nil for the degraded input).
    var parameters: Int?
    /// Multiply-accumulates in billions at the statistics size.
    var gmacs: Double?
    /// Mean wall time of one whole-image restoration, milliseconds.
    var msPerImage: Double?
    var images: Int
    /// Training seconds of the run the weights come from (`TrainingTime.seconds(forWeights:)`); nil when unknown.
    var trainingSeconds: Double? = nil

    enum CodingKeys: String, CodingKey {
        case model, psnr, ssim, psnrY = "psnr_y", ssimY = "ssim_y", parameters, gmacs, msPerImage = "ms_per_image", images
        case trainingSeconds = "training_seconds"
    }
}

/// Evaluation settings shared by `skd eval` and `skd demo`.
struct EvaluationSettings {
    var range: PixelRange = .minusOneToOne
    var border = 0
    var tile: Int? = nil
    var tileOverlap = 32
    var maxImages = 0
    var seed: UInt64 = 0
    /// The side of the square input at which GMACs are reported.
    var macsSize = 256
    /// When set, restorations are written to `<folder>/<model>/<name>.png`.
    var saveFolder: URL? = nil
    var includeInput = true
}

enum Evaluation {
    /// Evaluates `models` on `source` with the library's loop (`RestorationEvaluation`, the one the trainer's
    /// validation uses); the first row is the degraded input itself when `includeInput`.
    ///
    /// Degraded inputs are generated once per image from (seed, index), so every model sees the same ones.
    static func run(_ models: [NamedModel], on source: any PairedImageSource, settings: EvaluationSettings,
                    progress: (String) -> Void = printError) throws -> [EvaluationRow] {
        // Counted first: a size the count rejects must not cost the whole evaluation.
        let gmacs = try models.map { Double(try ModelCost.multiplyAccumulates($0.model, height: settings.macsSize, width: settings.macsSize)) / 1e9 }
        var options = EvaluationOptions()
        options.range = settings.range; options.border = settings.border; options.tile = settings.tile
        options.tileOverlap = settings.tileOverlap; options.maxImages = settings.maxImages; options.seed = settings.seed
        options.scoreInput = settings.includeInput; options.timed = true
        let requested = settings.maxImages > 0 ? min(settings.maxImages, source.count) : source.count
        let result = try RestorationEvaluation.run(models.map { $0.model as any TappedModel }, on: source, options: options, restored: { restored in
            guard let folder = settings.saveFolder else { return }
            let directory = folder.appendingPathComponent(models[restored.model].label)
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let stem = (restored.name as NSString).deletingPathExtension.replacingOccurrences(of: "/", with: "_")
            try restored.image.write(to: directory.appendingPathComponent(stem + ".png"))
        }, skipped: { name, error in
            // One unreadable image costs its row, not the evaluation.
            progress("skd: warning: skipped \(name): \(describeError(error))")
        }, finished: { done, count, name in
            progress("evaluated \(done)/\(count): \(name)")
        })
        guard let result else { throw RunConfigurationError("none of the \(requested) test images could be read") }
        let measured = result.images
        if measured < requested { progress("skd: warning: \(requested - measured) of \(requested) images skipped as unreadable; the means are over \(measured)") }
        var rows: [EvaluationRow] = []
        if let s = result.input {
            rows.append(EvaluationRow(model: "input (degraded)", psnr: s.psnr, ssim: s.ssim, psnrY: s.psnrY,
                                      ssimY: s.ssimY, parameters: nil, gmacs: nil, msPerImage: nil, images: measured))
        }
        for (m, named) in models.enumerated() {
            let s = result.models[m]
            rows.append(EvaluationRow(model: named.label, psnr: s.psnr, ssim: s.ssim, psnrY: s.psnrY, ssimY: s.ssimY,
                                      parameters: named.model.parameterCount,
                                      gmacs: gmacs[m],
                                      msPerImage: result.millisecondsPerImage?[m], images: measured,
                                      trainingSeconds: TrainingTime.seconds(forWeights: named.file)))
        }
        return rows
    }

    /// The rows as the terminal table.
    static func table(_ rows: [EvaluationRow], macsSize: Int) -> String {
        var table = TextTable(header: ["model", "PSNR", "SSIM", "PSNR-Y", "SSIM-Y", "params (M)", "GMACs@\(macsSize)", "ms/image", "train s"])
        for r in rows {
            table.rows.append([r.model, formatted(r.psnr, 2), formatted(r.ssim, 4), formatted(r.psnrY, 2), formatted(r.ssimY, 4),
                               formatted(r.parameters.map { Double($0) / 1e6 }, 3), formatted(r.gmacs, 2), formatted(r.msPerImage, 1),
                               formatted(r.trainingSeconds, 1)])
        }
        return table.render()
    }

    static func writeJSON(_ rows: [EvaluationRow], to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(rows).write(to: url, options: .atomic)
    }

    static func writeCSV(_ rows: [EvaluationRow], to url: URL) throws {
        var lines = ["model,psnr,ssim,psnr_y,ssim_y,parameters,gmacs,ms_per_image,images,training_seconds"]
        for r in rows {
            let name = r.model.contains(",") || r.model.contains("\"") ? "\"" + r.model.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : r.model
            lines.append([name, String(r.psnr), String(r.ssim), String(r.psnrY), String(r.ssimY), r.parameters.map(String.init) ?? "",
                          r.gmacs.map { String($0) } ?? "", r.msPerImage.map { String($0) } ?? "", String(r.images),
                          r.trainingSeconds.map { String($0) } ?? ""].joined(separator: ","))
        }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: url, options: .atomic)
    }
}

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate models: PSNR/SSIM (RGB and Y), parameters, GMACs and mean time per image.",
        discussion: "The first row is the degraded input itself. Models are weights files, checkpoint or run folders, optionally labelled: --model teacher=runs/teacher.")

    @Option(help: ArgumentHelp("The test images: a paired folder, or clean images with --degradation. (required)", valueName: "folder"))
    var data: String

    @Option(help: ArgumentHelp("Synthesise degraded inputs from clean images: noise:25, rain, motion-blur:5-21, joined with +. (default: none, the folder is paired)", valueName: "spec"))
    var degradation: String?

    @Option(help: ArgumentHelp("Paired layout: auto, input-target, blur-sharp, sidd. (default: auto)", valueName: "layout"))
    var layout: String?

    @Option(name: .customLong("model"), help: ArgumentHelp("A model to evaluate, [label=]path (required; repeatable).", valueName: "label=path"))
    var models: [String] = []

    @Option(help: ArgumentHelp("The architecture of weights files that name none (converted official weights), e.g. restormer. (default: the one each file names)", valueName: "preset"))
    var preset: String?

    @Option(help: ArgumentHelp("Pixel range the models work in: -1-1 (SwiftSKD training) or 0-1 (official released weights).", valueName: "range"))
    var range: PixelRange = .minusOneToOne

    @Option(help: ArgumentHelp("Pixels removed from every side before measuring.", valueName: "n"))
    var border = 0

    @Option(help: ArgumentHelp("Restore in overlapping tiles of this side (for large images). (default: whole images)", valueName: "pixels"))
    var tile: Int?

    @Option(help: ArgumentHelp("Overlap of neighbouring tiles.", valueName: "pixels"))
    var tileOverlap = 32

    @Option(help: ArgumentHelp("Evaluate at most n images, 0 for all.", valueName: "n"))
    var maxImages = 0

    @Option(help: ArgumentHelp("Seed of the synthetic degradations.", valueName: "n"))
    var seed = 0

    @Option(help: ArgumentHelp("Report GMACs for a square input of this side.", valueName: "pixels"))
    var macsSize = 256

    @Option(help: ArgumentHelp("Also write the table as JSON to this file. (default: none)", valueName: "file"))
    var json: String?

    @Option(help: ArgumentHelp("Also write the table as CSV to this file. (default: none)", valueName: "file"))
    var csv: String?

    @Option(help: ArgumentHelp("Write each model's restorations as PNG to <folder>/<label>/. (default: none)", valueName: "folder"))
    var save: String?

    func run() throws {
        try reportingErrors {
            guard !models.isEmpty else { throw RunConfigurationError("give at least one --model (weights file, checkpoint or run folder)") }
            guard seed >= 0, border >= 0, maxImages >= 0 else { throw RunConfigurationError("--seed, --border and --max-images must be ≥ 0 (got \(seed), \(border), \(maxImages))") }
            guard (1...ModelCost.maximumSide).contains(macsSize) else { throw RunConfigurationError("--macs-size \(macsSize) must lie in 1...\(ModelCost.maximumSide)") }
            try checkTiling(tile: tile, overlap: tileOverlap)
            if let json { try checkWritableFile(json, option: "--json") }
            if let csv { try checkWritableFile(csv, option: "--csv") }
            if let save { try checkCreatableFolder(save, option: "--save") }
            var dataset = DatasetConfiguration(root: data, degradation: degradation)
            if let layout, layout.lowercased() != "auto" {
                guard let l = PairedDataset.Layout(optionName: layout) else { throw RunConfigurationError("--layout: unknown layout '\(layout)'; known: auto, input-target, blur-sharp, sidd") }
                dataset.layout = l
            }
            let source = try dataset.makeSource(role: "test")
            try DataProbe.check(source, role: "test", minimumSide: 2 * Metrics.ssimRadius + 1 + 2 * border)
            let architecture = try preset.map { try ModelSpec.preset($0) }
            let loaded = try models.map { try NamedModel.load($0, architecture: architecture) }
            var settings = EvaluationSettings()
            settings.range = range; settings.border = border; settings.tile = tile; settings.tileOverlap = tileOverlap
            settings.maxImages = maxImages; settings.seed = UInt64(seed); settings.macsSize = macsSize
            settings.saveFolder = save.map { URL(fileURLWithPath: $0) }
            let rows = try Evaluation.run(loaded, on: source, settings: settings)
            print(Evaluation.table(rows, macsSize: macsSize))
            if let json { try Evaluation.writeJSON(rows, to: URL(fileURLWithPath: json)) }
            if let csv { try Evaluation.writeCSV(rows, to: URL(fileURLWithPath: csv)) }
        }
    }
}
