import Foundation
import SKDDistill
import SKDImage
import SKDModels
import SKDNN
import SKDTensor
import SKDTestSupport
import XCTest

/// A two-level convolutional model with taps, small enough for thousands of steps in a test.
final class TinyTappedModel: Module, TappedModel {
    let conv1: Conv2d, conv2: Conv2d, conv3: Conv2d
    init(width: Int) {
        conv1 = Conv2d(3, width, kernelSize: 3, padding: 1)
        conv2 = Conv2d(width, width, kernelSize: 3, stride: 2, padding: 1)
        conv3 = Conv2d(width, 3, kernelSize: 3, padding: 1)
        super.init()
    }
    var tapNames: [String] { ["level1", "level2"] }
    var sizeMultiple: Int { 2 }
    func forward(_ x: Tensor, taps: FeatureTaps?) -> Tensor {
        var h = conv1(x).leakyRelu(0.1)
        taps?.record("level1", h)
        let low = conv2(h).leakyRelu(0.1)
        taps?.record("level2", low)
        // Nearest-neighbour 2× upsampling as reshape + broadcast.
        let (b, c, lh, lw) = (low.shape[0], low.shape[1], low.shape[2], low.shape[3])
        h = h + low.reshaped([b, c, lh, 1, lw, 1]).expanded(to: [b, c, lh, 2, lw, 2]).reshaped(h.shape)
        return conv3(h) + x
    }
}

/// Procedural clean images with Gaussian noise: no files, fully determined by the index and the generator.
struct SyntheticPairs: PairedImageSource {
    var count: Int { 6 }
    func name(at index: Int) -> String { "synthetic-\(index)" }
    func clean(_ index: Int, size: Int) -> Image {
        var bytes = [UInt8](repeating: 0, count: size * size * 3)
        for y in 0..<size { for x in 0..<size { for c in 0..<3 {
            bytes[(y * size + x) * 3 + c] = UInt8((x * (index + 1) * 7 + y * (c + 2) * 5 + index * 31) % 256)
        } } }
        return Image(width: size, height: size, channels: 3, bytes: bytes)
    }
    func pair(at index: Int, using rng: inout SKDRandom) throws -> ImagePair {
        let target = clean(index, size: 24)
        return ImagePair(name: name(at: index), input: GaussianNoise(sigma: 25).degrade(target, using: &rng), target: target)
    }
    func patch(at index: Int, size: Int, using rng: inout SKDRandom) throws -> ImagePair {
        let full = try pair(at: index, using: &rng)
        let x = rng.int(below: 24 - size + 1), y = rng.int(below: 24 - size + 1)
        return ImagePair(name: full.name, input: full.input.cropped(x: x, y: y, width: size, height: size),
                         target: full.target.cropped(x: x, y: y, width: size, height: size))
    }
}

final class TrainerTests: XCTestCase {
    private func temporaryDirectory() throws -> URL { try makeTemporaryDirectory(prefix: "skd-trainer") }

    private func makeTrainer(method: DistillationMethod, iterations: Int, directory: URL) -> Trainer {
        ParameterInit.seed(7)
        let teacher = TinyTappedModel(width: 6), student = TinyTappedModel(width: 3)
        var options = DistillationOptions()
        options.method = method
        options.taps = ["level1", "level2"]
        options.feature.spatialTokenThreshold = nil
        options.waveLevels = 2
        let objective = DistillationObjective(teacher: teacher, student: student, options: options,
                                              featureExtractor: TeacherEncoderFeatures(teacher: teacher, taps: ["level1", "level2"]),
                                              probeSize: 8)
        var training = TrainingOptions()
        training.iterations = iterations
        training.batchSize = 2
        training.patchSize = 8
        training.logEvery = 1
        training.validateEvery = 0
        training.checkpointEvery = 0
        training.learningRate = 1e-3
        let trainer = Trainer(objective: objective, training: SyntheticPairs(), validation: SyntheticPairs(), options: training,
                              runDirectory: directory, configJSON: "{}")
        trainer.report = { _ in }
        return trainer
    }

    private func losses(_ directory: URL) throws -> [Int: Double] {
        let text = try String(contentsOf: directory.appendingPathComponent("log.jsonl"), encoding: .utf8)
        var out: [Int: Double] = [:]
        for line in text.split(separator: "\n") {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            if let total = object["total"] as? Double { out[object["iter"] as! Int] = total }
        }
        return out
    }

    /// 2000 steps straight, and 1000 + interrupt + resume for 1000: the logged losses agree to 1e-6.
    func testResumeReproducesTheUninterruptedRun() throws {
        let straightDir = try temporaryDirectory(), resumedDir = try temporaryDirectory()
        _ = try makeTrainer(method: .skd, iterations: 2000, directory: straightDir).run()
        let first = makeTrainer(method: .skd, iterations: 2000, directory: resumedDir)
        first.stopAfter = 1000
        XCTAssertThrowsError(try first.run()) { error in
            guard case TrainingError.interrupted(let iteration, _) = error else { return XCTFail("unexpected \(error)") }
            XCTAssertEqual(iteration, 1000)
        }
        let latest = try XCTUnwrap(CheckpointStore(runDirectory: resumedDir).latest())
        _ = try makeTrainer(method: .skd, iterations: 2000, directory: resumedDir).run(resume: latest)
        let a = try losses(straightDir), b = try losses(resumedDir)
        XCTAssertEqual(a.count, 2000)
        XCTAssertEqual(b.count, 2000)
        for iteration in 1...2000 {
            XCTAssertEqual(a[iteration]!, b[iteration]!, accuracy: 1e-6, "loss at iteration \(iteration)")
        }
        XCTAssertLessThan(a[2000]!, a[1]!, "training reduces the objective")
    }

    func testEveryMethodTrainsAndValidates() throws {
        // dckd needs a teacher whose remaining blocks can run from a tap (Restormer, DRSformer): BaselineTests
        // trains it with a Restormer pair.
        for method in DistillationMethod.allCases where method != .dckd {
            let dir = try temporaryDirectory()
            let trainer = makeTrainer(method: method, iterations: 4, directory: dir)
            let summary = try trainer.run()
            XCTAssertNotNil(summary.lastTerms["total"], "\(method)")
            XCTAssertTrue(FileManager.default.fileExists(atPath: summary.checkpoint.appendingPathComponent("model.safetensors").path))
        }
    }

    func testNonFiniteLossNamesTheTerm() throws {
        let dir = try temporaryDirectory()
        let trainer = makeTrainer(method: .none, iterations: 3, directory: dir)
        trainer.objective.student.parameters()[0].pointer[0] = .nan
        XCTAssertThrowsError(try trainer.run()) { error in
            XCTAssertTrue("\(error)".contains("'rec'"), "\(error)")
        }
    }
}
