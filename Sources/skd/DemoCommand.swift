// `skd demo`: the embedded default. With no data from the user it runs a complete distillation on real
// photographs shipped by Debian's mate-backgrounds package (installed by `make demo`): Gaussian colour noise
// σ = 25, a small Restormer teacher trained briefly, a smaller student distilled with `skd` and trained twice with
// `none` (same seed, same batches): once for the same steps, once for the same training wall time as the skd
// student; all four evaluated on held-out photographs, a table with each run's training time, a side-by-side PNG.
//
// Sizes and iteration counts are options (defaults documented in Docs/user-guide.md, chosen to finish in a few
// minutes on 2 cores); raise them to see the methods separate further.

import ArgumentParser
import Dispatch
import Foundation
import SwiftSKD

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a complete small distillation on Debian's mate-backgrounds photographs (needs no data of yours).",
        discussion: """
        Photos are split by sorted name: every 4th is held out for testing, the first of the rest validates, the others \
        train. They are box-downscaled to --long-side pixels into <output>/data. Then: skd train (teacher), skd distill \
        --method skd, --method none for the same steps and --method none for the same training wall time as the skd \
        student (--budget), skd eval on the held-out photos (with each run's training time), <output>/comparison.png.
        """)

    @Option(help: ArgumentHelp("The photographs (installed by `make demo` via apt-get install mate-backgrounds).", valueName: "folder"))
    var photos = "/usr/share/backgrounds/mate/nature"

    @Option(help: ArgumentHelp("The demo's folder: data, the three runs, results and pictures.", valueName: "folder"))
    var output = "runs/demo"

    @Option(help: ArgumentHelp("Photos are box-downscaled until their longer side is at most this.", valueName: "pixels"))
    var longSide = 384

    @Option(help: ArgumentHelp("σ of the Gaussian colour noise, 0–255 scale.", valueName: "σ"))
    var sigma = 25.0

    @Option(help: ArgumentHelp("Training crop side.", valueName: "pixels"))
    var patchSize = 64

    @Option(help: ArgumentHelp("Crops per batch.", valueName: "n"))
    var batchSize = 4

    @Option(help: ArgumentHelp("Teacher training steps.", valueName: "n"))
    var teacherIterations = 300

    @Option(help: ArgumentHelp("Training steps of the skd student and of the same-steps plain student; the same-time plain student trains for the skd student's measured training time instead.", valueName: "n"))
    var studentIterations = 150

    @Option(help: ArgumentHelp("Teacher width: Restormer dim (blocks [1,2,2,4], 1 refinement block).", valueName: "n"))
    var teacherDim = 16

    @Option(help: ArgumentHelp("Student width: Restormer dim (blocks [1,1,1,1], 1 refinement block).", valueName: "n"))
    var studentDim = 8

    @Option(help: ArgumentHelp("Initial learning rate of every run (short runs afford more than the paper's 2e-4).", valueName: "rate"))
    var lr = 1e-3

    @Option(help: ArgumentHelp("Spatial-branch token threshold of the skd student: 1024 skips the full-resolution taps of 64×64 crops, as the default 4096 does for 128×128 crops.", valueName: "n|all"))
    var spatialTokenThreshold = "1024"

    @Option(help: ArgumentHelp("The seed of every run and of the test noise.", valueName: "n"))
    var seed = 0

    func run() throws {
        try reportingErrors { try runDemo() }
    }

    func runDemo() throws {
        let began = DispatchTime.now()
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - began.uptimeNanoseconds) / 1e9 }
        guard longSide >= patchSize, patchSize > 0, batchSize > 0, teacherIterations > 0, studentIterations > 0, seed >= 0, sigma >= 0 else {
            throw RunConfigurationError("--long-side must be ≥ --patch-size; sizes, iterations, --seed and --sigma must be positive")
        }
        let fm = FileManager.default
        let photoFolder = URL(fileURLWithPath: photos)
        let names = ((try? fm.contentsOfDirectory(atPath: photoFolder.path)) ?? [])
            .filter { ImageFormat(pathExtension: ($0 as NSString).pathExtension) != nil }.sorted()
        guard names.count >= 4 else {
            throw RunConfigurationError("\(photoFolder.path): expected the mate-backgrounds photographs (found \(names.count) images); run `make demo`, which installs them with apt-get, or pass --photos FOLDER with at least 4 photos")
        }

        // A fresh demo folder; only a folder made by an earlier demo is cleared.
        let root = URL(fileURLWithPath: output)
        let marker = root.appendingPathComponent(".skd-demo")
        if fm.fileExists(atPath: root.path) {
            let contents = (try? fm.contentsOfDirectory(atPath: root.path)) ?? []
            guard contents.isEmpty || fm.fileExists(atPath: marker.path) else {
                throw RunConfigurationError("\(root.path) exists and was not made by skd demo; choose another --output")
            }
            for item in contents where item != ".skd-demo" { try fm.removeItem(at: root.appendingPathComponent(item)) }
        }
        try fm.createDirectory(at: root, withIntermediateDirectories: true)
        try Data().write(to: marker)

        // Data: deterministic split by sorted name, box-downscaled copies.
        let data = root.appendingPathComponent("data")
        var split: [String: [String]] = ["train": [], "val": [], "test": []]
        for (i, name) in names.enumerated() {
            let part = i % 4 == 3 ? "test" : (split["val"]!.isEmpty ? "val" : "train")
            split[part]!.append(name)
        }
        for (part, files) in split {
            let folder = data.appendingPathComponent(part)
            try fm.createDirectory(at: folder, withIntermediateDirectories: true)
            for name in files {
                let photo = try Image(contentsOf: photoFolder.appendingPathComponent(name), channels: .rgb)
                let small = DemoImages.downscaled(photo, longSide: longSide)
                try small.write(to: folder.appendingPathComponent((name as NSString).deletingPathExtension + ".png"))
            }
        }
        printError("demo data: \(split["train"]!.count) training, \(split["val"]!.count) validation, \(split["test"]!.count) held-out photos from \(photoFolder.path), longer side ≤ \(longSide) px, noise σ = \(sigma)")

        // The three runs.
        let noise = "noise:\(sigma)"
        func configuration(mode: RunMode, name: String, network: [String: Any], iterations: Int) throws -> RunConfiguration {
            var c = RunConfiguration(mode: mode)
            c.name = name
            c.output = root.appendingPathComponent(name).path
            c.seed = UInt64(seed)
            c.trainData = DatasetConfiguration(root: data.appendingPathComponent("train").path, degradation: noise)
            c.valData = DatasetConfiguration(root: data.appendingPathComponent("val").path, degradation: noise)
            c.student = try ModelSpec(dictionary: network)
            c.training.seed = UInt64(seed)
            c.training.iterations = iterations
            c.training.patchSize = patchSize
            c.training.batchSize = batchSize
            c.training.learningRate = Float(lr)
            c.training.logEvery = 5
            c.training.validateEvery = max(iterations / 4, 1)
            c.training.checkpointEvery = 0
            c.training.samples = 1
            return c
        }
        let teacherNetwork: [String: Any] = ["arch": "restormer", "dim": teacherDim, "num_blocks": [1, 2, 2, 4], "num_refinement_blocks": 1]
        let studentNetwork: [String: Any] = ["arch": "restormer", "dim": studentDim, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 1]

        var throughput: [(String, Double, Double, Int, Double)] = []
        @discardableResult
        func train(_ c: RunConfiguration, _ label: String) throws -> TrainingSummary {
            let length = c.training.budget.map { "a budget of \($0)" } ?? "\(c.training.iterations) iterations"
            printError("\n== \(label): \(length), batch \(c.training.batchSize), \(c.training.patchSize)×\(c.training.patchSize) crops ==")
            let stage = DispatchTime.now()
            let summary = try RunDriver.run(c, checkpoint: nil, stopAfter: nil)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - stage.uptimeNanoseconds) / 1e9
            throughput.append((label, summary.imagesPerSecond, seconds, summary.iterations, summary.trainingSeconds))
            return summary
        }
        try train(try configuration(mode: .train, name: "teacher", network: teacherNetwork, iterations: teacherIterations), "teacher (skd train)")
        let teacherWeights = root.appendingPathComponent("teacher").path
        var skd = try configuration(mode: .distill, name: "student-skd", network: studentNetwork, iterations: studentIterations)
        skd.teacherWeights = teacherWeights
        skd.distillation.method = .skd
        skd.distillation.feature.spatialTokenThreshold = try OptionThreshold.parse(spatialTokenThreshold)
        let skdSummary = try train(skd, "student, method skd (skd distill)")
        var none = try configuration(mode: .distill, name: "student-none", network: studentNetwork, iterations: studentIterations)
        none.distillation.method = .none
        try train(none, "student, method none, same steps (skd distill)")
        // The honest comparison: the plain student gets the skd student's training time (steps and batch loading,
        // not validation), with its cosine schedule laid over that time.
        var sameTime = try configuration(mode: .distill, name: "student-none-time", network: studentNetwork, iterations: studentIterations)
        sameTime.distillation.method = .none
        sameTime.training.budget = .seconds(max(skdSummary.trainingSeconds, 0.001))
        try train(sameTime, "student, method none, same training time as skd (skd distill --budget)")

        // Evaluation on the held-out photos.
        printError("\n== evaluation on \(split["test"]!.count) held-out photos ==")
        let test = try DatasetConfiguration(root: data.appendingPathComponent("test").path, degradation: noise).makeSource(role: "test")
        let runs = [("teacher", "teacher"), ("student skd", "student-skd"), ("student none, same steps", "student-none"),
                    ("student none, same time", "student-none-time")]
        let models = try runs.map {
            try NamedModel.load("\($0.0)=" + root.appendingPathComponent($0.1).path)
        }
        var settings = EvaluationSettings()
        settings.seed = UInt64(seed)
        settings.saveFolder = root.appendingPathComponent("restored")
        let rows = try Evaluation.run(models, on: test, settings: settings)
        try Evaluation.writeJSON(rows, to: root.appendingPathComponent("results.json"))
        try Evaluation.writeCSV(rows, to: root.appendingPathComponent("results.csv"))
        let comparison = root.appendingPathComponent("comparison.png")
        try DemoImages.comparison(models: models, source: test, seed: UInt64(seed)).write(to: comparison)

        print("")
        print("SwiftSKD demo: colour denoising, σ = \(Int(sigma)), \(split["test"]!.count) held-out mate-backgrounds photos (\(split["test"]!.joined(separator: ", ")))")
        print(Evaluation.table(rows, macsSize: settings.macsSize))
        print("")
        print("Which student is which: 'student skd' is distilled for \(studentIterations) steps; 'student none, same steps' trains")
        print("alone for the same \(studentIterations) steps; 'student none, same time' trains alone for the skd student's training")
        print("time (train s: steps and batch loading, not validation). Compare skd with the same-time row for what the time buys.")
        print("")
        for (label, rate, seconds, steps, training) in throughput {
            print(String(format: "%@: %d steps, %.0f s of training, %.2f training images/s, %.0f s in all", label, steps, training, rate, seconds))
        }
        print("comparison: \(comparison.path)")
        print("training curves: \(runs.map(\.1).map { root.appendingPathComponent($0).appendingPathComponent("training.png").path }.joined(separator: ", "))")
        print(String(format: "demo wall time: %.0f s", elapsed()))
    }
}

/// The spatial token threshold given as text: a count or `all`.
enum OptionThreshold {
    static func parse(_ text: String) throws -> Int? {
        if ["all", "none", "everywhere"].contains(text.lowercased()) { return nil }
        guard let n = Int(text), n >= 0 else { throw RunConfigurationError("--spatial-token-threshold: expected a token count or 'all', got '\(text)'") }
        return n
    }
}

/// The demo's image preparation and its side-by-side picture.
enum DemoImages {
    /// `image` reduced by the smallest integer factor that brings its longer side to at most `longSide`, each
    /// output pixel the mean of a factor×factor block (the usual way to turn a large photo into clean
    /// ground truth: averaging also removes most JPEG noise).
    static func downscaled(_ image: Image, longSide: Int) -> Image {
        let factor = max(1, (max(image.width, image.height) + longSide - 1) / longSide)
        if factor == 1 { return image.quantized() }
        let w = image.width / factor, h = image.height / factor, c = image.channels
        let source = image.bytes
        var out = [UInt8](repeating: 0, count: w * h * c)
        let area = Float(factor * factor)
        for y in 0..<h {
            for x in 0..<w {
                for ch in 0..<c {
                    var sum: Float = 0
                    for dy in 0..<factor {
                        let row = (y * factor + dy) * image.width
                        for dx in 0..<factor { sum += Float(source[(row + x * factor + dx) * c + ch]) }
                    }
                    out[(y * w + x) * c + ch] = UInt8(min(max((sum / area).rounded(), 0), 255))
                }
            }
        }
        return Image(width: w, height: h, channels: c, bytes: out)
    }

    /// `image` enlarged `factor` times by pixel repetition, so the crops' detail is visible.
    static func enlarged(_ image: Image, by factor: Int) -> Image {
        let source = image.rgb().bytes, w = image.width * factor, h = image.height * factor
        var out = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h {
            for x in 0..<w {
                let s = 3 * ((y / factor) * image.width + x / factor), d = 3 * (y * w + x)
                out[d] = source[s]; out[d + 1] = source[s + 1]; out[d + 2] = source[s + 2]
            }
        }
        return Image(width: w, height: h, channels: 3, bytes: out)
    }

    /// [input | teacher | students … | target] crops of the first held-out photo, each captioned with its PSNR on
    /// the whole photo.
    static func comparison(models: [NamedModel], source: any PairedImageSource, seed: UInt64) throws -> Image {
        let sample = try ValidationIterator(source: source, range: .minusOneToOne, seed: seed).sample(at: 0)
        let target = sample.targetImage
        let side = min(96, target.width, target.height)
        let x = (target.width - side) / 2, y = (target.height - side) / 2
        func panel(_ caption: String, _ image: Image, psnr: Double?) -> (caption: String, image: Image) {
            let crop = enlarged(image.quantized().cropped(x: x, y: y, width: side, height: side), by: 3)
            return (caption + (psnr.map { String(format: "\n%.2f dB", $0) } ?? "\n(reference)"), crop)
        }
        var panels = [panel("input", sample.inputImage, psnr: Metrics.psnr(sample.inputImage.quantized(), target))]
        for named in models {
            let restored = Image(tensor: Inference.restore(named.model, sample.input), range: .minusOneToOne)
            panels.append(panel(named.label, restored, psnr: Metrics.psnr(restored, target)))
        }
        panels.append(panel("target", target, psnr: nil))
        return SideBySide.compose(panels)
    }
}
