import Foundation
import SKDDistill
import SKDImage
import SKDModels
import SKDNN
import SKDTensor
import SKDTestSupport
import XCTest

/// A tiny Restormer description for fast tests.
let tinyRestormer: [String: Any] = ["arch": "restormer", "dim": 4, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 0, "heads": [1, 1, 1, 1]]

final class RunConfigurationTests: XCTestCase {
    private func temporaryDirectory() throws -> URL { try makeTemporaryDirectory(prefix: "skd-config") }

    /// A textured RGB image of the given size.
    private func photo(_ width: Int, _ height: Int, seed: Int = 0) -> Image {
        var bytes = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height { for x in 0..<width { for c in 0..<3 {
            bytes[(y * width + x) * 3 + c] = UInt8((x * 7 + y * 13 + c * 50 + seed * 31 + (x * y) % 17) % 256)
        } } }
        return Image(width: width, height: height, channels: 3, bytes: bytes)
    }

    private func cleanFolder(_ root: URL, sizes: [(Int, Int)]) throws -> URL {
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        for (i, s) in sizes.enumerated() { try photo(s.0, s.1, seed: i).write(to: root.appendingPathComponent("img\(i).png")) }
        return root
    }

    private func write(_ text: String, to url: URL) throws { try Data(text.utf8).write(to: url) }

    // MARK: - Reading and writing options

    func testYAMLFileIsReadIntoEverySection() throws {
        let dir = try temporaryDirectory()
        let yaml = dir.appendingPathComponent("options.yml")
        try write("""
        name: den
        seed: 7
        datasets:
          train:
            root: data/train
            degradation: noise:0-50
            patch_size: 96
            batch_size: 4
            workers: 2
          val:
            root: data/val
            layout: input-target
        network:
          student: {preset: restormer-s, dim: 16}
          teacher_weights: runs/teacher
        train:
          iterations: 1234
          lr: 2e-4
          min_lr: 1.0e-6
          checkpoint_every: 100
        val:
          every: 50
          images: 3
        distill:
          method: wave
          taps: [encoder_level1, latent]
          sigma: 2
          alpha2: 0.3
          spatial_token_threshold: all
          channel_branch: false
          contrastive_form: infonce
          tau: 0.5
          wave_levels: 3
        """, to: yaml)
        let c = try RunConfiguration.load(yaml: yaml, mode: .distill)
        XCTAssertEqual(c.name, "den")
        XCTAssertEqual(c.seed, 7)
        XCTAssertEqual(c.training.seed, 7)
        XCTAssertEqual(c.trainData, DatasetConfiguration(root: "data/train", degradation: "noise:0-50"))
        XCTAssertEqual(c.valData?.layout, .inputTarget)
        XCTAssertEqual(c.training.patchSize, 96)
        XCTAssertEqual(c.training.batchSize, 4)
        XCTAssertEqual(c.training.workers, 2)
        XCTAssertEqual(c.training.iterations, 1234)
        XCTAssertEqual(c.training.learningRate, 2e-4, "YAML 1.1 reads 2e-4 as text; it must still be a number")
        XCTAssertEqual(c.training.minLearningRate, 1e-6)
        XCTAssertEqual(c.training.checkpointEvery, 100)
        XCTAssertEqual(c.training.validateEvery, 50)
        XCTAssertEqual(c.training.validationImages, 3)
        guard case .restormer(let student)? = c.student else { return XCTFail("student should be a restormer") }
        XCTAssertEqual(student.dim, 16)
        XCTAssertEqual(student.numBlocks, [1, 2, 2, 4], "the preset's other arguments are kept")
        XCTAssertEqual(c.teacherWeights, "runs/teacher")
        XCTAssertEqual(c.distillation.method, .wave)
        XCTAssertEqual(c.distillation.taps, ["encoder_level1", "latent"])
        XCTAssertEqual(c.distillation.feature.sigma, 2)
        XCTAssertEqual(c.distillation.alpha2, 0.3, accuracy: 1e-7)
        XCTAssertNil(c.distillation.feature.spatialTokenThreshold)
        XCTAssertFalse(c.distillation.feature.channelBranch)
        XCTAssertEqual(c.distillation.contrastiveForm, .infonce)
        XCTAssertEqual(c.distillation.tau, 0.5)
        XCTAssertEqual(c.distillation.waveLevels, 3)
        // Untouched options keep the defaults.
        XCTAssertEqual(c.distillation.alpha3, DistillationOptions().alpha3)
        XCTAssertEqual(c.training.logEvery, TrainingOptions().logEvery)
    }

    func testResolvedOptionsSurviveYAMLAndJSON() throws {
        var c = RunConfiguration(mode: .distill)
        c.name = "round-trip"
        c.seed = 3
        c.training.seed = 3
        c.trainData = DatasetConfiguration(root: "a b/train", degradation: "rain+noise:5", recursive: true)
        c.valData = DatasetConfiguration(root: "val", layout: .blurSharp)
        c.student = try ModelSpec(dictionary: tinyRestormer)
        c.teacherWeights = "runs/teacher/best.safetensors"
        c.contrastiveFeatures = .teacher
        c.training.learningRate = 3e-4
        c.training.minLearningRate = 1e-7
        c.distillation.method = .outputKD
        c.distillation.feature.spatialTokenThreshold = 1024
        c.distillation.contrastiveWeights = [0.5, 1, 2]
        c.distillation.outputKDWeight = 0.25

        let dir = try temporaryDirectory()
        let yaml = dir.appendingPathComponent("resolved.yml")
        try write(c.yamlString(), to: yaml)
        XCTAssertEqual(try RunConfiguration.load(yaml: yaml, mode: .distill), c, c.yamlString())
        XCTAssertEqual(try RunConfiguration(json: c.jsonString(), source: "state.json"), c)
    }

    func testOverridesFollowTheFileAndReachIntoPresets() throws {
        let dir = try temporaryDirectory()
        let yaml = dir.appendingPathComponent("o.yml")
        try write("network:\n  model: restormer-s\ntrain:\n  iterations: 10\n", to: yaml)
        let c = try RunConfiguration.load(yaml: yaml, mode: .train,
                                          overrides: ["train.iterations=20", "network.model.dim=8", "network.model.num_blocks=[1, 1, 1, 1]",
                                                      "datasets.train.root=/data", "distill.method=skd"])
        XCTAssertEqual(c.training.iterations, 20)
        guard case .restormer(let model)? = c.student else { return XCTFail("model should be a restormer") }
        XCTAssertEqual(model.dim, 8)
        XCTAssertEqual(model.numBlocks, [1, 1, 1, 1])
        XCTAssertEqual(model.numRefinementBlocks, 1, "restormer-s keeps its other arguments")
        XCTAssertEqual(c.trainData?.root, "/data")
        XCTAssertEqual(c.distillation.method, .none, "skd train always trains with L1 alone")

        var tree: [String: Any] = ["datasets": ["train": ["root": "/data"]]]
        try RunConfiguration.assign(64, at: "datasets.train.patch_size", in: &tree)
        try RunConfiguration.apply(overrides: ["datasets.train.patch_size=32"], to: &tree)
        XCTAssertEqual(try RunConfiguration(dictionary: tree, source: "t", mode: .train).training.patchSize, 32)
        XCTAssertTrue(message { try RunConfiguration.apply(overrides: ["train.iterations"], to: &tree) }.contains("key.path=value"))
    }

    func testOptionErrorsNameTheFileKeyAndValue() throws {
        let dir = try temporaryDirectory()
        let yaml = dir.appendingPathComponent("bad.yml")
        func check(_ text: String, _ expected: [String], file: StaticString = #filePath, line: UInt = #line) throws {
            try write(text, to: yaml)
            let m = message({ try RunConfiguration.load(yaml: yaml, mode: .distill) }, file: file, line: line)
            for e in expected + [yaml.path] { XCTAssertTrue(m.contains(e), "'\(m)' should mention '\(e)'", file: file, line: line) }
        }
        try check("train:\n  iteratons: 5\n", ["train.iteratons", "unknown option"])
        try check("train:\n  iterations: many\n", ["train.iterations", "'many'"])
        try check("network:\n  student: restormer-xl\n", ["network.student", "restormer-xl"])
        try check("network:\n  student: {arch: transformer9000}\n", ["network.student", "transformer9000"])
        try check("distill:\n  method: magic\n", ["distill.method", "magic"])
        try check("datasets:\n  train:\n    root: x\n    degradation: snow\n", ["datasets.train.degradation", "snow"])
        try check("datasets:\n  train:\n    degradation: noise:25\n", ["datasets.train.root", "missing"])
        try check("datasets: [1, 2]\n", ["datasets", "section"])
        try check("train: {iterations: 3\n", ["not valid YAML"])
        let missing = dir.appendingPathComponent("nope.yml")
        XCTAssertTrue(message { try RunConfiguration.load(yaml: missing, mode: .train) }.contains(missing.path))
    }

    func testDegradationNames() throws {
        XCTAssertEqual(try DegradationSpec.parse("noise:25") as? GaussianNoise, GaussianNoise(sigma: 25))
        XCTAssertEqual(try DegradationSpec.parse("noise:0-50") as? GaussianNoise, GaussianNoise(sigma: 0...50))
        XCTAssertEqual(try DegradationSpec.parse("motion-blur:3-9") as? MotionBlur, MotionBlur(length: 3...9))
        XCTAssertEqual(try DegradationSpec.parse("rain") as? RainStreaks, RainStreaks())
        XCTAssertNil(try DegradationSpec.parse("none"))
        let chain = try XCTUnwrap(try DegradationSpec.parse("motion-blur + noise:5") as? DegradationChain)
        XCTAssertEqual(chain.steps.count, 2)
        XCTAssertTrue(chain.steps[1] is GaussianNoise)
        for bad in ["noise", "noise:50-10", "noise:-3", "hail", "rain:5"] {
            XCTAssertTrue(message { try DegradationSpec.parse(bad) as Any }.contains(bad.split(separator: ":").first!), bad)
        }
    }

    // MARK: - Checks before any work

    /// A distillation configuration over `train` with the tiny student and method none.
    private func configuration(train: URL, degradation: String? = "noise:25", patch: Int = 16, output: URL) throws -> RunConfiguration {
        var c = RunConfiguration(mode: .distill)
        c.distillation.method = .none
        c.student = try ModelSpec(dictionary: tinyRestormer)
        c.trainData = DatasetConfiguration(root: train.path, degradation: degradation)
        c.training.patchSize = patch
        c.training.batchSize = 2
        c.output = output.path
        return c
    }

    func testAValidRunPreparesAndTrains() throws {
        let dir = try temporaryDirectory()
        let train = try cleanFolder(dir.appendingPathComponent("train"), sizes: [(24, 20), (20, 28)])
        let val = try cleanFolder(dir.appendingPathComponent("val"), sizes: [(17, 13)])
        var c = try configuration(train: train, output: dir.appendingPathComponent("run"))
        c.valData = DatasetConfiguration(root: val.path)
        c.training.iterations = 3
        c.training.validateEvery = 3
        let prepared = try c.prepare()
        XCTAssertEqual(prepared.training.count, 2)
        XCTAssertEqual(prepared.validation?.count, 1)
        XCTAssertNil(prepared.teacher)
        XCTAssertTrue(prepared.validation is CleanDataset, "a clean validation folder inherits the training degradation")
        let summary = try prepared.makeTrainer().run()
        XCTAssertEqual(summary.iterations, 3)
        // The best weights carry the run's options: they load back as a model of the same architecture.
        let weights = try ModelWeights.load(dir.appendingPathComponent("run"))
        XCTAssertEqual(weights.spec, c.student)
        let model = try weights.makeModel()
        for (name, value) in prepared.student.stateDict() {
            XCTAssertEqual(relativeError(model.stateDict()[name]!, value), 0, name)
        }
        // A second run into the same folder is refused; resuming it is not.
        XCTAssertTrue(message { try c.prepare() }.contains("already holds a run"))
        let (stored, checkpoint) = try RunConfiguration.resuming(dir.appendingPathComponent("run"))
        XCTAssertEqual(stored, c)
        XCTAssertTrue(checkpoint.path.hasSuffix("iter-00000003"))
        XCTAssertNoThrow(try stored.prepare(resuming: true))
    }

    func testMissingFolderIsNamed() throws {
        let dir = try temporaryDirectory()
        let missing = dir.appendingPathComponent("no-such-data")
        let m = message { try self.configuration(train: missing, output: dir.appendingPathComponent("run")).prepare() }
        XCTAssertTrue(m.contains(missing.path) && m.contains("no such folder"), m)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("run").path), "no work may start")
    }

    func testMismatchedPairsAreNamed() throws {
        let dir = try temporaryDirectory()
        let root = dir.appendingPathComponent("pairs")
        for sub in ["input", "target"] { try FileManager.default.createDirectory(at: root.appendingPathComponent(sub), withIntermediateDirectories: true) }
        try photo(20, 20).write(to: root.appendingPathComponent("input/a.png"))
        try photo(20, 20).write(to: root.appendingPathComponent("target/a.png"))
        try photo(20, 20).write(to: root.appendingPathComponent("input/lonely.png"))
        let m = message { try self.configuration(train: root, degradation: nil, output: dir.appendingPathComponent("run")).prepare() }
        XCTAssertTrue(m.contains("lonely.png"), m)

        // Pairs of different sizes are found from the headers alone.
        try FileManager.default.removeItem(at: root.appendingPathComponent("input/lonely.png"))
        try photo(20, 24).write(to: root.appendingPathComponent("input/b.png"))
        try photo(20, 20).write(to: root.appendingPathComponent("target/b.png"))
        let s = message { try self.configuration(train: root, degradation: nil, output: dir.appendingPathComponent("run")).prepare() }
        XCTAssertTrue(s.contains("b.png") && s.contains("20x24") && s.contains("differ in size"), s)
    }

    func testUnreadableImagesAreNamed() throws {
        let dir = try temporaryDirectory()
        let train = try cleanFolder(dir.appendingPathComponent("train"), sizes: [(20, 20), (20, 20)])
        // The first image (decoded in full) and a later one (header read) are both checked.
        for name in ["img0.png", "img1.png"] {
            let good = train.appendingPathComponent(name)
            let saved = try Data(contentsOf: good)
            try Data("not an image at all".utf8).write(to: good)
            let m = message { try self.configuration(train: train, output: dir.appendingPathComponent("run")).prepare() }
            XCTAssertTrue(m.contains(good.path), m)
            try saved.write(to: good)
        }
        // A PNG cut inside its pixel data has a valid header: the full decode of the first image catches it.
        let first = train.appendingPathComponent("img0.png")
        let bytes = try Data(contentsOf: first)
        try bytes.prefix(bytes.count / 2).write(to: first)
        let m = message { try self.configuration(train: train, output: dir.appendingPathComponent("run")).prepare() }
        XCTAssertTrue(m.contains(first.path), m)
    }

    func testCropLargerThanAnImageIsNamed() throws {
        let dir = try temporaryDirectory()
        let train = try cleanFolder(dir.appendingPathComponent("train"), sizes: [(40, 40), (40, 12), (40, 40)])
        let m = message { try self.configuration(train: train, patch: 16, output: dir.appendingPathComponent("run")).prepare() }
        XCTAssertTrue(m.contains("img1.png") && m.contains("40x12") && m.contains("16x16"), m)
    }

    func testUnknownPresetAndMissingNetworkAreNamed() throws {
        XCTAssertTrue(message { try RunConfiguration.defaults(mode: .distill, overrides: ["network.student=restormer-xxl"]) }.contains("restormer-xxl"))
        let dir = try temporaryDirectory()
        var c = try configuration(train: dir, output: dir.appendingPathComponent("run"))
        c.student = nil
        XCTAssertTrue(message { try c.prepare() }.contains("--student"))
    }

    func testTeacherProblemsAreNamed() throws {
        let dir = try temporaryDirectory()
        let train = try cleanFolder(dir.appendingPathComponent("train"), sizes: [(24, 24)])
        var c = try configuration(train: train, output: dir.appendingPathComponent("run"))
        c.distillation.method = .skd
        XCTAssertTrue(message { try c.prepare() }.contains("--teacher"))

        let missing = dir.appendingPathComponent("missing.safetensors")
        c.teacherWeights = missing.path
        XCTAssertTrue(message { try c.prepare() }.contains(missing.path))

        // A Uformer teacher for a Restormer student.
        let uformer = dir.appendingPathComponent("uformer.safetensors")
        try SafeTensors.write(["x": Tensor(zeros: [1])], metadata: ["config": try ModelSpec.preset("uformer-s").jsonString()], to: uformer)
        c.teacherWeights = uformer.path
        let m = message { try c.prepare() }
        XCTAssertTrue(m.contains("family mismatch") && m.contains("uformer") && m.contains("restormer") && m.contains(uformer.path), m)

        // Weights without an architecture.
        let bare = dir.appendingPathComponent("bare.safetensors")
        try SafeTensors.write(["x": Tensor(zeros: [1])], to: bare)
        c.teacherWeights = bare.path
        XCTAssertTrue(message { try c.prepare() }.contains("--teacher-preset"))

        // Weights that do not fit the architecture they name.
        let wrong = dir.appendingPathComponent("wrong.safetensors")
        try SafeTensors.write(["x": Tensor(zeros: [1])], metadata: ["config": try ModelSpec(dictionary: tinyRestormer).jsonString()], to: wrong)
        c.teacherWeights = wrong.path
        XCTAssertTrue(message { try c.prepare() }.contains(wrong.path))
    }

    func testSKDWithAMatchingTeacherPrepares() throws {
        let dir = try temporaryDirectory()
        let train = try cleanFolder(dir.appendingPathComponent("train"), sizes: [(24, 24)])
        let spec = try ModelSpec(dictionary: tinyRestormer)
        ParameterInit.seed(11)
        let teacher = spec.makeModel()
        let file = dir.appendingPathComponent("teacher.safetensors")
        try SafeTensors.write(teacher.stateDict(), metadata: ["config": spec.jsonString()], to: file)
        var c = try configuration(train: train, output: dir.appendingPathComponent("run"))
        c.distillation.method = .skd
        c.teacherWeights = file.path
        let prepared = try c.prepare()
        XCTAssertTrue(prepared.featureExtractor is TeacherEncoderFeatures, "without VGG weights φ is the teacher's encoder")
        XCTAssertEqual(prepared.teacherFile, file)
        for (name, value) in teacher.stateDict() { XCTAssertEqual(relativeError(prepared.teacher!.stateDict()[name]!, value), 0, name) }

        c.distillation.taps = ["latent", "no_such_tap"]
        XCTAssertTrue(message { try c.prepare() }.contains("no_such_tap"))
        c.distillation.taps = nil
        c.contrastiveFeatures = .vgg19
        XCTAssertTrue(message { try c.prepare() }.contains("--vgg-weights"))
        c.contrastiveFeatures = .auto
        c.training.patchSize = 12
        XCTAssertTrue(message { try c.prepare() }.contains("multiple of 8"))
    }

    // MARK: - Image headers and VGG weights

    func testImageHeadersGiveTheSize() throws {
        let dir = try temporaryDirectory()
        for (name, w, h) in [("a.png", 33, 17), ("b.jpg", 45, 29), ("c.jpeg", 8, 64)] {
            let url = dir.appendingPathComponent(name)
            try photo(w, h).write(to: url)
            let size = try ImageHeader.size(of: url)
            XCTAssertEqual(size.width, w, name)
            XCTAssertEqual(size.height, h, name)
        }
        let text = dir.appendingPathComponent("t.png")
        try Data("hello".utf8).write(to: text)
        XCTAssertThrowsError(try ImageHeader.size(of: text)) { XCTAssertTrue("\($0)".contains(text.path)) }
        XCTAssertThrowsError(try ImageHeader.size(of: dir.appendingPathComponent("none.png")))
    }

    func testVGGFeatureExtractorMatchesTorchvision() throws {
        guard let url = try referenceFile("golden/vgg19_features.safetensors") else { return }
        let layers = ["relu1_1", "relu2_1", "relu3_1"]
        let phi = try VGGFeatureExtractor(weights: url, layers: layers)
        XCTAssertEqual(phi.defaultWeights, [1.0 / 32, 1.0 / 16, 1.0 / 8])
        // The reference input is already ImageNet-normalised; φ takes images in [−1, 1].
        let reference = try SafeTensors.read(url).tensors
        let normalized = reference["input"]!
        let images = Tensor(uninitialized: normalized.shape)
        let plane = normalized.shape[2] * normalized.shape[3]
        for c in 0..<3 {
            for i in 0..<plane {
                let v = normalized.pointer[c * plane + i] * VGG19Features.imageNetStd[c] + VGG19Features.imageNetMean[c]
                images.pointer[c * plane + i] = 2 * v - 1
            }
        }
        let features = phi.features(images)
        for (layer, feature) in zip(layers, features) {
            XCTAssertLessThan(relativeError(feature, reference["tap.\(layer)"]!), 1e-4, layer)
        }
        // The file stops at relu3_1: asking for relu5_1 names what is missing.
        XCTAssertThrowsError(try VGGFeatureExtractor(weights: url)) { XCTAssertTrue("\($0)".contains("features.12.weight"), "\($0)") }
    }

    /// Found by `make fuzz` (the options harness): a mapping key that is not a plain scalar (here a flow sequence
    /// behind a tag) trapped inside Yams' mapping constructor. It is now a one-line error naming the file and line;
    /// keys of every other shape still parse.
    func testNonScalarKeysAreErrorsNotTraps() throws {
        let dir = try temporaryDirectory()
        let file = dir.appendingPathComponent("odd.yml")
        for text in ["datasets:\n  train: {root: a}\n? [a, b]\n: 1\n",
                     "distill: {method: wave, !taps [latent, decoder_level1]: x}\n",
                     "? {a: 1}\n: 2\n"] {
            try write(text, to: file)
            let m = message { try RunConfiguration.optionsTree(yaml: file) }
            XCTAssertTrue(m.contains(file.path) && m.contains("not a plain name"), m)
        }
        try write("datasets:\n  train: {root: a, patch_size: 64}\ntrain: {lr: 1e-3, iterations: 5}\n", to: file)
        let tree = try RunConfiguration.optionsTree(yaml: file)
        XCTAssertEqual(((tree["datasets"] as? [String: Any])?["train"] as? [String: Any])?["patch_size"] as? Int, 64)
        XCTAssertEqual((tree["train"] as? [String: Any])?["lr"] as? Double, 1e-3)
        try write("", to: file)
        XCTAssertTrue(try RunConfiguration.optionsTree(yaml: file).isEmpty)
        // The same through --set values (the fuzzer's second finding: the override path used Yams' constructor too).
        let m = message { try RunConfiguration.defaults(mode: .train, overrides: ["train.lr={[a]: 1}"]) }
        XCTAssertTrue(m.contains("not a plain name"), m)
    }
}
