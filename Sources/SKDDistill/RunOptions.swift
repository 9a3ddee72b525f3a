// The options schema: the sections and keys of an options file (BasicSR's shape: datasets / network / train / val,
// plus distill), as Codable structs. Each option's name is spelled once, in a CodingKeys enum below; reading
// (YAML files, `--set`, command-line flags, the JSON stored in checkpoints), writing (`options.yml`, checkpoints),
// the unknown-key messages and the key paths named by the run checks all come from these enums.
//
// Every field is optional: an absent key (or `null`) keeps the default of `RunConfiguration(mode:)`.

import Foundation
import SKDImage
import SKDModels

/// An options file as written: every section and key optional. `RunConfiguration(options:mode:)` resolves it over
/// the defaults; `RunConfiguration.options` writes every resolved value back.
struct RunOptions: Codable, Equatable {
    var mode: RunMode?
    var name: String?
    var output: String?
    var seed: UInt64?
    var datasets: Datasets?
    var network: Network?
    var train: Train?
    var val: Val?
    var distill: Distill?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case mode, name, output, seed, datasets, network, train, val, distill
    }

    /// `datasets`.
    struct Datasets: Codable, Equatable {
        var train: TrainingData?
        var val: Dataset?
        enum CodingKeys: String, CodingKey, CaseIterable { case train, val }
    }

    /// A dataset (`datasets.val`, and the data keys of `datasets.train`).
    struct Dataset: Codable, Equatable {
        var root: String
        var degradation: DegradationText?
        var layout: LayoutOption?
        var recursive: Bool?
        enum CodingKeys: String, CodingKey, CaseIterable { case root, degradation, layout, recursive }
    }

    /// `datasets.train`: a dataset (present when any of its keys is) and the batch keys.
    struct TrainingData: Codable, Equatable {
        var data: Dataset?
        var patchSize: Int?
        var batchSize: Int?
        var workers: Int?
        enum CodingKeys: String, CodingKey, CaseIterable {
            case patchSize = "patch_size", batchSize = "batch_size", workers
        }

        init(data: Dataset?, patchSize: Int?, batchSize: Int?, workers: Int?) {
            self.data = data; self.patchSize = patchSize; self.batchSize = batchSize; self.workers = workers
        }

        init(from decoder: Decoder) throws {
            let dataKeys = try decoder.container(keyedBy: Dataset.CodingKeys.self)
            data = dataKeys.allKeys.isEmpty ? nil : try Dataset(from: decoder)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            patchSize = try c.decodeIfPresent(Int.self, forKey: .patchSize)
            batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize)
            workers = try c.decodeIfPresent(Int.self, forKey: .workers)
        }

        func encode(to encoder: Encoder) throws {
            try data?.encode(to: encoder)
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encodeIfPresent(patchSize, forKey: .patchSize)
            try c.encodeIfPresent(batchSize, forKey: .batchSize)
            try c.encodeIfPresent(workers, forKey: .workers)
        }
    }

    /// `network`.
    struct Network: Codable, Equatable {
        var student: NetworkDescription?
        /// `skd train`'s name for the network (the same as `student`).
        var model: NetworkDescription?
        var teacher: NetworkDescription?
        var teacherWeights: String?
        var vggWeights: String?
        var initWeights: String?
        var initStrict: Bool?
        var initFromTeacher: Bool?
        enum CodingKeys: String, CodingKey, CaseIterable {
            case student, model, teacher, teacherWeights = "teacher_weights", vggWeights = "vgg_weights"
            case initWeights = "init_weights", initStrict = "init_strict", initFromTeacher = "init_from_teacher"
        }
    }

    /// `train`: the schedule.
    struct Train: Codable, Equatable {
        var iterations: Int?
        var lr: Float?
        var minLR: Float?
        var weightDecay: Float?
        var logEvery: Int?
        var checkpointEvery: Int?
        var budget: BudgetText?
        enum CodingKeys: String, CodingKey, CaseIterable {
            case iterations, lr, minLR = "min_lr", weightDecay = "weight_decay", logEvery = "log_every"
            case checkpointEvery = "checkpoint_every", budget
        }
    }

    /// `val`: validation during training.
    struct Val: Codable, Equatable {
        var every: Int?
        var images: Int?
        var samples: Int?
        enum CodingKeys: String, CodingKey, CaseIterable { case every, images, samples }
    }

    /// `distill`: the method and its weights.
    struct Distill: Codable, Equatable {
        var method: DistillationMethod?
        var taps: [String]?
        var sigma: Float?
        var alpha1: Float?
        var alpha2: Float?
        var alpha3: Float?
        var channelBranch: Bool?
        var spatialBranch: Bool?
        var spatialTokenThreshold: TokenThreshold?
        var spatialTileRows: Int?
        var contrastive: Bool?
        var contrastiveForm: ContrastiveForm?
        var contrastiveFeatures: ContrastiveFeatureSource?
        var contrastiveWeights: [Float]?
        var tau: Float?
        var waveLambda: Float?
        var waveLevels: Int?
        var outputKDWeight: Float?
        var waveForm: WaveletForm?
        var fitnetDistance: FitNetDistance?
        enum CodingKeys: String, CodingKey, CaseIterable {
            case method, taps, sigma, alpha1, alpha2, alpha3, channelBranch = "channel_branch", spatialBranch = "spatial_branch"
            case spatialTokenThreshold = "spatial_token_threshold", spatialTileRows = "spatial_tile_rows", contrastive
            case contrastiveForm = "contrastive_form", contrastiveFeatures = "contrastive_features"
            case contrastiveWeights = "contrastive_weights", tau, waveLambda = "wave_lambda", waveLevels = "wave_levels"
            case outputKDWeight = "output_kd_weight", waveForm = "wave_form", fitnetDistance = "fitnet_distance"
        }
    }

    // MARK: Values with a reading of their own

    /// A network: a preset name (`restormer-s`) or a mapping (`{preset: restormer-s, dim: 16}`, `{arch: ...}`);
    /// written as the full description `{arch: ..., official arguments}`.
    struct NetworkDescription: OptionTreeValue, Equatable {
        var spec: ModelSpec
        init(_ spec: ModelSpec) { self.spec = spec }
        init(treeValue value: Any, at path: OptionTreePath) throws {
            do {
                if let name = value as? String { spec = try ModelSpec.preset(name); return }
                guard let mapping = value as? [String: Any] else {
                    throw path.error("expected a preset name or a mapping, got \(OptionTreePath.describe(value))")
                }
                spec = try ModelSpec(dictionary: mapping)
            } catch let error as RunConfigurationError { throw error } catch {
                throw path.error("\(error)")
            }
        }
        var treeValue: Any { OptionsText.normalized((try? spec.dictionary()) ?? ["arch": spec.architecture]) }
        init(from decoder: Decoder) throws { self = try Self.read(from: decoder) }
        func encode(to encoder: Encoder) throws { try write(to: encoder) }
    }

    /// A synthetic degradation in `DegradationSpec`'s grammar, checked when read.
    struct DegradationText: OptionTreeValue, Equatable {
        var text: String
        init(_ text: String) { self.text = text }
        init(treeValue value: Any, at path: OptionTreePath) throws {
            guard let text = value as? String else { throw path.error("expected text, got \(OptionTreePath.describe(value))") }
            do { _ = try DegradationSpec.parse(text) } catch let error as RunConfigurationError { throw path.error(error.message) }
            self.text = text
        }
        var treeValue: Any { text }
        init(from decoder: Decoder) throws { self = try Self.read(from: decoder) }
        func encode(to encoder: Encoder) throws { try write(to: encoder) }
    }

    /// A paired layout, or `auto` (detected: `nil`).
    struct LayoutOption: OptionTreeValue, Equatable {
        var layout: PairedDataset.Layout?
        init(_ layout: PairedDataset.Layout?) { self.layout = layout }
        init(treeValue value: Any, at path: OptionTreePath) throws {
            guard let name = value as? String else { throw path.error("expected text, got \(OptionTreePath.describe(value))") }
            if name.lowercased() == "auto" { layout = nil; return }
            guard let layout = PairedDataset.Layout(optionName: name) else {
                throw path.error("unknown layout '\(name)'; known: auto, input-target, blur-sharp, sidd")
            }
            self.layout = layout
        }
        var treeValue: Any { layout?.optionName ?? "auto" }
        init(from decoder: Decoder) throws { self = try Self.read(from: decoder) }
        func encode(to encoder: Encoder) throws { try write(to: encoder) }
    }

    /// The spatial branch's token threshold: a count, or `all` (also `null`, `none`, `everywhere`) for every tap.
    struct TokenThreshold: OptionTreeValue, Equatable {
        var tokens: Int?
        static var readsNull: Bool { true }
        init(_ tokens: Int?) { self.tokens = tokens }
        init(treeValue value: Any, at path: OptionTreePath) throws {
            if value is NSNull { tokens = nil; return }
            if let s = value as? String, ["all", "none", "everywhere"].contains(s.lowercased()) { tokens = nil; return }
            let count = try? OptionTreeDecoder(value: value, path: path, reading: OptionTreeReading(source: path.source)).integer()
            guard let count, count >= 0 else { throw path.error("expected a token count ≥ 0 or 'all', got \(OptionTreePath.describe(value))") }
            tokens = count
        }
        var treeValue: Any { tokens.map { $0 as Any } ?? "all" }
        init(from decoder: Decoder) throws { self = try Self.read(from: decoder) }
        func encode(to encoder: Encoder) throws { try write(to: encoder) }
    }

    /// A training budget in `TrainingBudget`'s grammar; `none` (or empty) for no budget.
    struct BudgetText: OptionTreeValue, Equatable {
        var budget: TrainingBudget?
        init(_ budget: TrainingBudget?) { self.budget = budget }
        init(treeValue value: Any, at path: OptionTreePath) throws {
            let text = try OptionTreeDecoder(value: value, path: path, reading: OptionTreeReading(source: path.source)).string()
            if ["none", "null", ""].contains(text.lowercased()) { budget = nil; return }
            let parsed: TrainingBudget
            do { parsed = try TrainingBudget(parsing: text) } catch let error as RunConfigurationError { throw path.error(error.message) }
            // Written back as `TrainingBudget.description`, which must read back (`1e-07s` would not).
            guard (try? TrainingBudget(parsing: parsed.description)) == parsed else { throw path.error("'\(text)' is out of range") }
            budget = parsed
        }
        var treeValue: Any { budget?.description ?? "none" }
        init(from decoder: Decoder) throws { self = try Self.read(from: decoder) }
        func encode(to encoder: Encoder) throws { try write(to: encoder) }
    }
}

/// Option key paths for messages (`OptionKey.train(.lr)` is `train.lr`), spelled by the schema's CodingKeys.
enum OptionKey {
    private static func join(_ keys: CodingKey...) -> String { keys.map(\.stringValue).joined(separator: ".") }

    /// `datasets.train.<key>` (batch keys).
    static func trainingData(_ key: RunOptions.TrainingData.CodingKeys) -> String {
        join(RunOptions.CodingKeys.datasets, RunOptions.Datasets.CodingKeys.train, key)
    }
    /// `datasets.train.<key>` (data keys).
    static func trainingData(_ key: RunOptions.Dataset.CodingKeys) -> String {
        join(RunOptions.CodingKeys.datasets, RunOptions.Datasets.CodingKeys.train, key)
    }
    /// `network.<key>`.
    static func network(_ key: RunOptions.Network.CodingKeys) -> String { join(RunOptions.CodingKeys.network, key) }
    /// `train.<key>`.
    static func train(_ key: RunOptions.Train.CodingKeys) -> String { join(RunOptions.CodingKeys.train, key) }
    /// `val.<key>`.
    static func val(_ key: RunOptions.Val.CodingKeys) -> String { join(RunOptions.CodingKeys.val, key) }
    /// `distill.<key>`.
    static func distill(_ key: RunOptions.Distill.CodingKeys) -> String { join(RunOptions.CodingKeys.distill, key) }
}

extension RunMode: Codable, OptionChoice {
    static var optionNoun: String { "mode" }
}

extension DistillationMethod: OptionChoice {
    static var optionNoun: String { "method" }
}

extension ContrastiveForm: OptionChoice {
    static var optionNoun: String { "form" }
}

extension ContrastiveFeatureSource: Codable, OptionChoice {
    static var optionNoun: String { "feature source" }
}

extension WaveletForm: OptionChoice {
    static var optionNoun: String { "form" }
}

extension FitNetDistance: OptionChoice {
    static var optionNoun: String { "distance" }
}

extension RunConfiguration {
    /// Every option's key path (`datasets.train.patch_size`, `distill.tau`, ...), from the schema's CodingKeys, in
    /// the order options files are written; `network.model` is `skd train`'s alias of `network.student`.
    public static var optionKeys: [String] {
        func keys<K: CodingKey & CaseIterable>(_ prefix: [CodingKey], _ type: K.Type) -> [String] {
            K.allCases.map { (prefix + [$0]).map(\.stringValue).joined(separator: ".") }
        }
        typealias Top = RunOptions.CodingKeys
        let train: [CodingKey] = [Top.datasets, RunOptions.Datasets.CodingKeys.train]
        let val: [CodingKey] = [Top.datasets, RunOptions.Datasets.CodingKeys.val]
        return [Top.mode, Top.name, Top.output, Top.seed].map(\.stringValue)
            + keys(train, RunOptions.Dataset.CodingKeys.self) + keys(train, RunOptions.TrainingData.CodingKeys.self)
            + keys(val, RunOptions.Dataset.CodingKeys.self)
            + keys([Top.network], RunOptions.Network.CodingKeys.self) + keys([Top.train], RunOptions.Train.CodingKeys.self)
            + keys([Top.val], RunOptions.Val.CodingKeys.self) + keys([Top.distill], RunOptions.Distill.CodingKeys.self)
    }
}

// MARK: - Schema ↔ configuration

extension RunConfiguration {
    /// The configuration `options` describes over the defaults of `mode` (`skd train` always trains with L1 alone).
    ///
    /// - Throws: `RunConfigurationError` naming `source` and the key for the checks between keys.
    init(options o: RunOptions, mode: RunMode, source: String) throws {
        self.init(mode: mode)
        if let v = o.name { name = v }
        output = o.output
        if let v = o.seed { seed = v }
        training.seed = seed

        if let train = o.datasets?.train {
            trainData = train.data.map(DatasetConfiguration.init(options:))
            if let v = train.patchSize { training.patchSize = v }
            if let v = train.batchSize { training.batchSize = v }
            if let v = train.workers { training.workers = v }
        }
        valData = o.datasets?.val.map(DatasetConfiguration.init(options:))

        if let n = o.network {
            if n.student != nil && n.model != nil {
                throw RunConfigurationError("\(source): \(RunOptions.CodingKeys.network.stringValue): give either '\(RunOptions.Network.CodingKeys.student.stringValue)' or '\(RunOptions.Network.CodingKeys.model.stringValue)' (the same network), not both")
            }
            student = (n.student ?? n.model)?.spec
            teacherNetwork = n.teacher?.spec
            teacherWeights = n.teacherWeights
            vggWeights = n.vggWeights
            initWeights = n.initWeights
            if let v = n.initStrict { initStrict = v }
            if let v = n.initFromTeacher { initFromTeacher = v }
        }

        if let t = o.train {
            if let v = t.iterations { training.iterations = v }
            if let v = t.lr { training.learningRate = v }
            if let v = t.minLR { training.minLearningRate = v }
            if let v = t.weightDecay { training.weightDecay = v }
            if let v = t.logEvery { training.logEvery = v }
            if let v = t.checkpointEvery { training.checkpointEvery = v }
            if let v = t.budget { training.budget = v.budget }
        }

        if let v = o.val {
            if let x = v.every { training.validateEvery = x }
            if let x = v.images { training.validationImages = x }
            if let x = v.samples { training.samples = x }
        }

        if let d = o.distill {
            var x = distillation
            if let v = d.method { x.method = v }
            if let v = d.taps { x.taps = v }
            if let v = d.sigma { x.feature.sigma = v }
            if let v = d.alpha1 { x.feature.alpha1 = v }
            if let v = d.alpha2 { x.alpha2 = v }
            if let v = d.alpha3 { x.alpha3 = v }
            if let v = d.channelBranch { x.feature.channelBranch = v }
            if let v = d.spatialBranch { x.feature.spatialBranch = v }
            if let v = d.spatialTokenThreshold { x.feature.spatialTokenThreshold = v.tokens }
            if let v = d.spatialTileRows { x.feature.spatialTileRows = v }
            if let v = d.contrastive { x.contrastive = v }
            if let v = d.contrastiveForm { x.contrastiveForm = v }
            if let v = d.contrastiveFeatures { contrastiveFeatures = v }
            if let v = d.contrastiveWeights { x.contrastiveWeights = v }
            if let v = d.tau { x.tau = v }
            if let v = d.waveLambda { x.waveLambda = v }
            if let v = d.waveLevels { x.waveLevels = v }
            if let v = d.outputKDWeight { x.outputKDWeight = v }
            if let v = d.waveForm { x.waveForm = v }
            if let v = d.fitnetDistance { x.fitnetDistance = v }
            distillation = x
        }
        if mode == .train { distillation.method = .none }
    }

    /// Every resolved option in the schema (what `options.yml` and checkpoints store). The distill section is
    /// written for distillation runs only; optional settings that are unset are left out.
    var options: RunOptions {
        var o = RunOptions()
        o.mode = mode
        o.name = name
        o.output = output
        o.seed = seed
        o.datasets = RunOptions.Datasets(
            train: RunOptions.TrainingData(data: trainData?.options, patchSize: training.patchSize, batchSize: training.batchSize,
                                           workers: training.workers),
            val: valData?.options)
        var n = RunOptions.Network()
        n.student = student.map(RunOptions.NetworkDescription.init)
        n.teacher = teacherNetwork.map(RunOptions.NetworkDescription.init)
        n.teacherWeights = teacherWeights
        n.vggWeights = vggWeights
        n.initWeights = initWeights
        n.initStrict = initWeights != nil ? initStrict : nil
        n.initFromTeacher = initFromTeacher ? true : nil
        o.network = n == RunOptions.Network() ? nil : n
        o.train = RunOptions.Train(iterations: training.iterations, lr: training.learningRate, minLR: training.minLearningRate,
                                   weightDecay: training.weightDecay, logEvery: training.logEvery,
                                   checkpointEvery: training.checkpointEvery, budget: training.budget.map(RunOptions.BudgetText.init))
        o.val = RunOptions.Val(every: training.validateEvery, images: training.validationImages, samples: training.samples)
        if mode == .distill {
            let x = distillation
            o.distill = RunOptions.Distill(
                method: x.method, taps: x.taps, sigma: x.feature.sigma, alpha1: x.feature.alpha1, alpha2: x.alpha2, alpha3: x.alpha3,
                channelBranch: x.feature.channelBranch, spatialBranch: x.feature.spatialBranch,
                spatialTokenThreshold: RunOptions.TokenThreshold(x.feature.spatialTokenThreshold),
                spatialTileRows: x.feature.spatialTileRows, contrastive: x.contrastive, contrastiveForm: x.contrastiveForm,
                contrastiveFeatures: contrastiveFeatures, contrastiveWeights: x.contrastiveWeights, tau: x.tau,
                waveLambda: x.waveLambda, waveLevels: x.waveLevels, outputKDWeight: x.outputKDWeight, waveForm: x.waveForm,
                fitnetDistance: x.fitnetDistance)
        }
        return o
    }
}

extension DatasetConfiguration {
    init(options d: RunOptions.Dataset) {
        self.init(root: d.root, degradation: d.degradation?.text, layout: d.layout?.layout, recursive: d.recursive ?? false)
    }

    var options: RunOptions.Dataset {
        RunOptions.Dataset(root: root, degradation: degradation.map(RunOptions.DegradationText.init),
                        layout: layout.map(RunOptions.LayoutOption.init), recursive: recursive)
    }
}
