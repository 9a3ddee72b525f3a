import Foundation
import SKDDistill
import SKDImage
import SKDModels
import SKDTestSupport
import XCTest

/// The options schema: every key written and read back, numbers and text written so they read back, and the
/// errors of reading (unknown keys, `--set`) naming the file and key.
final class OptionsSchemaTests: XCTestCase {
    private func temporaryDirectory() throws -> URL { try makeTemporaryDirectory(prefix: "skd-schema") }

    /// A distillation configuration with every option away from its default.
    private func everyOptionSet() throws -> RunConfiguration {
        var c = RunConfiguration(mode: .distill)
        c.name = "every-key"
        c.output = "runs/elsewhere"
        c.seed = 42
        c.training.seed = 42
        c.trainData = DatasetConfiguration(root: "data/train", degradation: "noise: 25", layout: .blurSharp, recursive: true)
        c.valData = DatasetConfiguration(root: "data/val", degradation: "rain + motion-blur:3-9", layout: .sidd, recursive: true)
        c.student = try ModelSpec(dictionary: ["preset": "restormer-s", "dim": 16])
        c.teacherNetwork = try ModelSpec.preset("restormer")
        c.teacherWeights = "runs/teacher"
        c.vggWeights = "weights/vgg19.safetensors"
        c.initWeights = "runs/student/best.safetensors"
        c.initStrict = false
        c.initFromTeacher = true
        c.contrastiveFeatures = .vgg19
        c.training.patchSize = 96
        c.training.batchSize = 4
        c.training.workers = 3
        c.training.iterations = 1234
        c.training.learningRate = 1e-3
        c.training.minLearningRate = 1e-7
        c.training.weightDecay = 1e-4
        c.training.logEvery = 7
        c.training.checkpointEvery = 250
        c.training.budget = .images(50_000)
        c.training.validateEvery = 50
        c.training.validationImages = 3
        c.training.samples = 5
        var d = c.distillation
        d.method = .fitnet
        d.taps = ["encoder_level1", "latent"]
        d.feature.sigma = 2.5
        d.feature.alpha1 = 0.3
        d.alpha2 = 0.1
        d.alpha3 = 0.05
        d.feature.channelBranch = false
        d.feature.spatialBranch = false
        d.feature.spatialTokenThreshold = 1024
        d.feature.spatialTileRows = 16
        d.contrastive = false
        d.contrastiveForm = .infonce
        d.contrastiveWeights = [0.5, 1, 2, 0.25, 1e-3]
        d.tau = 1e-6
        d.waveLambda = 0.7
        d.waveLevels = 3
        d.outputKDWeight = 0.25
        d.waveForm = .absolute
        d.fitnetDistance = .l1
        c.distillation = d
        return c
    }

    /// The key paths of a written options tree (network descriptions are one value each).
    private func keyPaths(_ tree: [String: Any], prefix: String = "") -> Set<String> {
        var out = Set<String>()
        for (key, value) in tree {
            let path = prefix.isEmpty ? key : "\(prefix).\(key)"
            if let section = value as? [String: Any], !["network.student", "network.teacher"].contains(path) {
                out.formUnion(keyPaths(section, prefix: path))
            } else {
                out.insert(path)
            }
        }
        return out
    }

    func testEveryKeyIsWrittenAndReadBack() throws {
        let c = try everyOptionSet()
        XCTAssertNotEqual(c, RunConfiguration(mode: .distill))
        // Every key of the schema is written (but the alias network.model), and nothing else.
        let written = keyPaths(c.dictionary())
        XCTAssertEqual(written, Set(RunConfiguration.optionKeys).subtracting(["network.model"]))
        XCTAssertEqual(RunConfiguration.optionKeys.count, Set(RunConfiguration.optionKeys).count, "each key once")

        let dir = try temporaryDirectory()
        let yaml = dir.appendingPathComponent("options.yml")
        try Data(c.yamlString().utf8).write(to: yaml)
        let back = try RunConfiguration.load(yaml: yaml, mode: .distill)
        XCTAssertEqual(back, c, c.yamlString())
        XCTAssertEqual(back.yamlString(), c.yamlString(), "writing is a fixed point")
        XCTAssertEqual(try RunConfiguration(json: c.jsonString(), source: "state.json"), c)

        // The defaults and a training run (no distill section) too.
        for mode in RunMode.allCases {
            let defaults = RunConfiguration(mode: mode)
            try Data(defaults.yamlString().utf8).write(to: yaml)
            XCTAssertEqual(try RunConfiguration.load(yaml: yaml, mode: mode), defaults, defaults.yamlString())
            XCTAssertEqual(try RunConfiguration(json: defaults.jsonString(), source: "state.json"), defaults)
        }
        var train = c
        train.mode = .train
        train.distillation = DistillationOptions()
        train.distillation.method = .none
        train.contrastiveFeatures = .auto
        try Data(train.yamlString().utf8).write(to: yaml)
        XCTAssertFalse(train.yamlString().contains("distill:"))
        XCTAssertEqual(try RunConfiguration.load(yaml: yaml, mode: .train), train)
        XCTAssertEqual(try RunConfiguration(json: train.jsonString(), source: "state.json"), train)
    }

    func testKeysAreWrittenInSchemaOrder() throws {
        let text = try everyOptionSet().yamlString()
        let top = text.split(separator: "\n").filter { !$0.hasPrefix(" ") }.map { String($0.split(separator: ":")[0]) }
        XCTAssertEqual(top, ["mode", "name", "output", "seed", "datasets", "network", "train", "val", "distill"])
        func index(_ s: String) -> Int { text.range(of: s).map { text.distance(from: text.startIndex, to: $0.lowerBound) } ?? -1 }
        XCTAssertLessThan(index("    root: data/train"), index("    patch_size: 96"))
        XCTAssertLessThan(index("  train:\n    root"), index("  val:\n    root"))
    }

    func testNumbersAreWrittenAsTheUserWroteThem() throws {
        var c = RunConfiguration(mode: .distill)
        c.training.learningRate = 1e-3
        c.training.minLearningRate = 1e-6
        c.training.weightDecay = 0.0001
        c.distillation.alpha2 = 0.2
        c.distillation.contrastiveWeights = [1.0 / 32, 0.1]
        let yaml = c.yamlString()
        for expected in ["\n  lr: 0.001\n", "\n  min_lr: 1.0e-06\n", "\n  weight_decay: 0.0001\n", "\n  alpha2: 0.2\n",
                         "contrastive_weights: [0.03125, 0.1]"] {
            XCTAssertTrue(yaml.contains(expected), "'\(expected)' missing in:\n\(yaml)")
        }
        XCTAssertFalse(yaml.contains("00000"), yaml)
        let json = c.jsonString()
        XCTAssertTrue(json.contains("\"lr\":0.001"), json)
        XCTAssertTrue(json.contains("\"alpha2\":0.2"), json)
        // A file as a user writes it reads to the same numbers: YAML 1.1's text `1e-3` and the float `1.0e-06`.
        let dir = try temporaryDirectory()
        let file = dir.appendingPathComponent("numbers.yml")
        try Data("train:\n  lr: 1e-3\n  min_lr: 1.0e-06\n  weight_decay: 1e-4\ndistill:\n  alpha2: .2\n".utf8).write(to: file)
        let read = try RunConfiguration.load(yaml: file, mode: .distill)
        XCTAssertEqual(read.training.learningRate, 1e-3)
        XCTAssertEqual(read.training.minLearningRate, 1e-6)
        XCTAssertEqual(read.training.weightDecay, 1e-4)
        XCTAssertEqual(read.distillation.alpha2, 0.2)
    }

    /// The case: `--degradation "noise: 25"` was written as `degradation: noise: 25`, which no YAML reader
    /// reads back. Text that YAML would read otherwise is quoted.
    func testTextIsWrittenSoItReadsBack() throws {
        let dir = try temporaryDirectory()
        let file = dir.appendingPathComponent("text.yml")
        for text in ["noise: 25", "noise:25", "rain + noise:5", "true", "null", "12", "1e-3", "#comment", " lead", "a \"quoted\" 'name'",
                     "[1, 2]", "{a: 1}", "- item", "caf\u{e9}/\u{1F600}", "tab\there", "yes", "~", "@at", "`tick", "%p", "&anchor", "*alias", "!tag"] {
            var c = RunConfiguration(mode: .train)
            c.name = text
            c.trainData = DatasetConfiguration(root: text)
            if (try? DegradationSpec.parse(text)) != nil { c.trainData?.degradation = text }
            try Data(c.yamlString().utf8).write(to: file)
            XCTAssertEqual(try RunConfiguration.load(yaml: file, mode: .train), c, c.yamlString())
            XCTAssertEqual(try RunConfiguration(json: c.jsonString(), source: "j"), c, c.jsonString())
        }
        var c = RunConfiguration(mode: .train)
        c.trainData = DatasetConfiguration(root: "d", degradation: "noise: 25")
        XCTAssertTrue(c.yamlString().contains("degradation: 'noise: 25'"), c.yamlString())
    }

    func testUnknownKeysNameTheFileKeyAndKnownKeys() throws {
        let dir = try temporaryDirectory()
        let file = dir.appendingPathComponent("typo.yml")
        try Data("datasets:\n  train:\n    root: data\n    patch_sise: 64\n".utf8).write(to: file)
        let m = message { try RunConfiguration.load(yaml: file, mode: .train) }
        // The training dataset's section is read by two schema structs: both their keys are known.
        for expected in [file.path, "datasets.train.patch_sise", "unknown option", "root", "patch_size", "workers"] {
            XCTAssertTrue(m.contains(expected), "'\(m)' should mention '\(expected)'")
        }
        try Data("bogus: 1\n".utf8).write(to: file)
        XCTAssertTrue(message { try RunConfiguration.load(yaml: file, mode: .train) }.contains("bogus"))
        try Data("distill:\n  method: SKD\n  contrastive_form: InfoNCE\n".utf8).write(to: file)
        let c = try RunConfiguration.load(yaml: file, mode: .distill)
        XCTAssertEqual(c.distillation.method, .skd, "choices are read in any case")
        XCTAssertEqual(c.distillation.contrastiveForm, .infonce)
        try Data("distill:\n  method: skd\n  method: wave\n".utf8).write(to: file)
        XCTAssertTrue(message { try RunConfiguration.load(yaml: file, mode: .distill) }.contains("distill.method is given twice"))
    }

    func testSetOverridesGoThroughTheSchema() throws {
        let c = try RunConfiguration.defaults(mode: .distill, overrides: [
            "train.lr=1e-3", "distill.taps=encoder_level1, latent", "distill.spatial_token_threshold=all",
            "datasets.train.root=/data", "datasets.train.degradation='noise: 25'", "distill.contrastive_weights=[1, 0.5]", "seed=9",
        ])
        XCTAssertEqual(c.training.learningRate, 1e-3)
        XCTAssertEqual(c.distillation.taps, ["encoder_level1", "latent"])
        XCTAssertNil(c.distillation.feature.spatialTokenThreshold)
        XCTAssertEqual(c.trainData?.degradation, "noise: 25")
        XCTAssertEqual(c.distillation.contrastiveWeights, [1, 0.5])
        XCTAssertEqual(c.seed, 9)
        XCTAssertEqual(c.training.seed, 9)
        // `null` means the default, except for the token threshold, where it means every tap (as `all`).
        XCTAssertEqual(try RunConfiguration.defaults(mode: .distill, overrides: ["train.lr=null"]).training.learningRate,
                       TrainingOptions().learningRate)
        XCTAssertNil(try RunConfiguration.defaults(mode: .distill, overrides: ["distill.spatial_token_threshold=null"])
            .distillation.feature.spatialTokenThreshold)
        for (assignment, expected) in [("train.lrr=1", ["--set", "train.lrr", "unknown option", "min_lr"]),
                                       ("train.lr=fast", ["train.lr", "'fast'", "number"]),
                                       ("seed=-1", ["seed", "≥ 0"]),
                                       ("distill.method=magic", ["distill.method", "magic", "skd"]),
                                       ("datasets.train.layout=zigzag", ["datasets.train.layout", "zigzag"]),
                                       ("datasets.train.degradation=hail", ["datasets.train.degradation", "hail"]),
                                       ("distill.spatial_token_threshold=-5", ["distill.spatial_token_threshold"]),
                                       ("train.budget=3 weeks", ["train.budget", "3 weeks"]),
                                       ("val.every=true", ["val.every", "integer"])] {
            let m = message { try RunConfiguration.defaults(mode: .distill, overrides: ["datasets.train.root=/data", assignment]) }
            for e in expected { XCTAssertTrue(m.contains(e), "'\(m)' should mention '\(e)'") }
        }
    }

    func testSeedsBeyondIntRoundTrip() throws {
        var c = RunConfiguration(mode: .train)
        c.seed = UInt64.max
        c.training.seed = UInt64.max
        let dir = try temporaryDirectory()
        let file = dir.appendingPathComponent("seed.yml")
        try Data(c.yamlString().utf8).write(to: file)
        XCTAssertEqual(try RunConfiguration.load(yaml: file, mode: .train), c, c.yamlString())
        XCTAssertEqual(try RunConfiguration(json: c.jsonString(), source: "j"), c)
    }

    /// Checkpoints written before the schema stored Floats widened to Double (`0.00019999999494757503`) and the
    /// token threshold's `all` as text: they still resume to the same options.
    func testCheckpointsOfTheEarlierWriterStillRead() throws {
        let old = """
        {"datasets":{"train":{"batch_size":2,"degradation":"noise:25","patch_size":16,"recursive":false,"root":"/data","workers":1}},\
        "distill":{"alpha1":0.5,"alpha2":0.20000000298023224,"alpha3":0.20000000298023224,"channel_branch":true,"contrastive":true,\
        "contrastive_features":"auto","contrastive_form":"ratio","fitnet_distance":"l2","method":"skd","output_kd_weight":1,"sigma":1,\
        "spatial_branch":true,"spatial_token_threshold":"all","tau":0.10000000149011612,"wave_form":"squared",\
        "wave_lambda":0.4000000059604645,"wave_levels":4},"mode":"distill","name":"distill",\
        "network":{"student":{"arch":"restormer","dim":4,"num_blocks":[1,1,1,1],"num_refinement_blocks":0,"heads":[1,1,1,1]}},\
        "seed":0,"train":{"checkpoint_every":500,"iterations":1000,"log_every":10,"lr":0.00019999999494757503,\
        "min_lr":9.999999974752427e-07,"weight_decay":0},"val":{"every":500,"images":0,"samples":2}}
        """
        var expected = RunConfiguration(mode: .distill)
        expected.trainData = DatasetConfiguration(root: "/data", degradation: "noise:25")
        expected.training.batchSize = 2
        expected.training.patchSize = 16
        expected.student = try ModelSpec(dictionary: tinyRestormer)
        expected.distillation.feature.spatialTokenThreshold = nil
        let read = try RunConfiguration(json: old, source: "state.json")
        XCTAssertEqual(read, expected)
        XCTAssertTrue(read.jsonString().contains("\"lr\":0.0002"), read.jsonString())
    }
}
