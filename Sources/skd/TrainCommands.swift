// `skd train` and `skd distill`: options → checked run → trainer → plot and summary.

import ArgumentParser
import Foundation
import SwiftSKD

private let defaults = TrainingOptions()
private let distillDefaults = DistillationOptions()

/// The options both training commands share. Each one, when given, is written into the options tree at the key
/// its help names, over the options file; `--set` assignments come last.
struct RunFlags: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("A YAML options file (sections datasets, network, train, val, distill; see Docs/user-guide.md). Flags override it. (default: none)", valueName: "file"))
    var config: String?

    @Option(name: .customLong("set"), help: ArgumentHelp("Override any option by its key path, applied after the file and the other flags, e.g. --set network.student.dim=16 (repeatable). (default: none)", valueName: "key.path=value"))
    var assignments: [String] = []

    @Option(help: ArgumentHelp("The run's name [name]; the output folder defaults to runs/<name>. (default: train, distill)", valueName: "name"))
    var name: String?

    @Option(help: ArgumentHelp("The run folder for logs, checkpoints, samples and the plot [output]. (default: runs/<name>)", valueName: "folder"))
    var output: String?

    @Option(help: ArgumentHelp("The run seed: initial weights, batches, crops, flips, synthetic degradations [seed]. (default: \(defaults.seed))", valueName: "n"))
    var seed: Int?

    @Option(help: ArgumentHelp("Training images [datasets.train.root]: a paired folder (input/+target/, blur/+sharp/, SIDD) or, with --train-degradation, clean images. (required, here or in the options file)", valueName: "folder"))
    var trainData: String?

    @Option(help: ArgumentHelp("Synthesise degraded inputs from clean images [datasets.train.degradation]: noise:25, noise:0-50, rain, motion-blur:5-21, joined with +. (default: none, the folder is paired)", valueName: "spec"))
    var trainDegradation: String?

    @Option(help: ArgumentHelp("Paired layout [datasets.train.layout]: auto, input-target, blur-sharp, sidd. (default: auto)", valueName: "layout"))
    var trainLayout: String?

    @Option(help: ArgumentHelp("Validation images [datasets.val.root]; a clean folder inherits the training degradation. (default: no validation)", valueName: "folder"))
    var valData: String?

    @Option(help: ArgumentHelp("Degradation of a clean validation folder [datasets.val.degradation]; 'none' for a paired folder. (default: the training degradation)", valueName: "spec"))
    var valDegradation: String?

    @Option(help: ArgumentHelp("Side of the square training crops [datasets.train.patch_size]. (default: \(defaults.patchSize))", valueName: "pixels"))
    var patchSize: Int?

    @Option(help: ArgumentHelp("Crops per batch [datasets.train.batch_size]. (default: \(defaults.batchSize))", valueName: "n"))
    var batchSize: Int?

    @Option(help: ArgumentHelp("Background image-decoding threads [datasets.train.workers]. (default: \(defaults.workers))", valueName: "n"))
    var workers: Int?

    @Option(help: ArgumentHelp("Optimizer steps [train.iterations]. (default: \(defaults.iterations))", valueName: "n"))
    var iterations: Int?

    @Option(help: ArgumentHelp("A budget replacing --iterations [train.budget]: training wall clock (90s, 30m, 2h, 1.5h) or training images (50000img, 50kimg); the cosine schedule reaches --min-lr at the budget. (default: none, --iterations steps)", valueName: "budget"))
    var budget: String?

    @Option(help: ArgumentHelp("Adam's initial learning rate, cosine-annealed to --min-lr over the run [train.lr]. (default: \(defaults.learningRate))", valueName: "rate"))
    var lr: Double?

    @Option(help: ArgumentHelp("The learning rate at the last step [train.min_lr]. (default: \(defaults.minLearningRate))", valueName: "rate"))
    var minLr: Double?

    @Option(help: ArgumentHelp("Adam's L2 weight decay [train.weight_decay]. (default: \(defaults.weightDecay))", valueName: "decay"))
    var weightDecay: Double?

    @Option(help: ArgumentHelp("A log.jsonl line every n steps [train.log_every]. (default: \(defaults.logEvery))", valueName: "n"))
    var logEvery: Int?

    @Option(help: ArgumentHelp("A checkpoint every n steps, 0 for only the last [train.checkpoint_every]. (default: \(defaults.checkpointEvery))", valueName: "n"))
    var checkpointEvery: Int?

    @Option(help: ArgumentHelp("Validate every n steps and at the end, keeping best.safetensors; 0 disables [val.every]. (default: \(defaults.validateEvery))", valueName: "n"))
    var valEvery: Int?

    @Option(help: ArgumentHelp("Validate on at most n images, 0 for all [val.images]. (default: \(defaults.validationImages))", valueName: "n"))
    var valImages: Int?

    @Option(help: ArgumentHelp("Sample restorations saved as PNG at each validation [val.samples]. (default: \(defaults.samples))", valueName: "n"))
    var samples: Int?

    @Option(help: ArgumentHelp("Start the network from these weights [network.init_weights] (BasicSR's pretrain_network_g): a .safetensors file, checkpoint or run folder. (default: none, fresh initialisation)", valueName: "file"))
    var initWeights: String?

    @Flag(inversion: .prefixedNo, help: ArgumentHelp("--init-weights must fit exactly; --no-init-strict loads what fits and names missing, unexpected and mis-shaped keys [network.init_strict]. (default: strict)"))
    var initStrict: Bool?

    @Option(help: ArgumentHelp("Continue an interrupted run from its folder (latest checkpoint) or a checkpoint folder, with its stored options; reproduces the uninterrupted run's losses. (default: none, a new run)", valueName: "folder"))
    var resume: String?

    @Flag(help: "Skip the pre-flight pass that decodes every training and validation image once; an unreadable image then costs its batch (with a warning). (default: off)")
    var skipPreflight = false

    @Option(help: .private)
    var stopAfter: Int?

    @Option(help: ArgumentHelp("OpenBLAS and kernel threads of this process, or of each rank under mpirun (Docs/distributed.md); also $SKD_THREADS. Not stored in the run. (default: every core; under mpirun the cores of the rank)", valueName: "n"))
    var threads: Int?

    /// The flags as (key path, value) assignments, in the order they are applied.
    func assignments(modelKey: String, model: String?) -> [(String, Any)] {
        var out: [(String, Any)] = []
        func add(_ key: String, _ value: Any?) { if let value { out.append((key, value)) } }
        add("name", name); add("output", output); add("seed", seed)
        add("datasets.train.root", trainData); add("datasets.train.degradation", trainDegradation)
        add("datasets.train.layout", trainLayout)
        add("datasets.val.root", valData); add("datasets.val.degradation", valDegradation)
        add("datasets.train.patch_size", patchSize); add("datasets.train.batch_size", batchSize); add("datasets.train.workers", workers)
        add("train.iterations", iterations); add("train.budget", budget); add("train.lr", lr); add("train.min_lr", minLr); add("train.weight_decay", weightDecay)
        add("train.log_every", logEvery); add("train.checkpoint_every", checkpointEvery)
        add("val.every", valEvery); add("val.images", valImages); add("val.samples", samples)
        add("network.init_weights", initWeights); add("network.init_strict", initStrict)
        add(modelKey, model)
        return out
    }
}

/// The distillation options of `skd distill`.
struct DistillFlags: ParsableArguments {
    @Option(help: ArgumentHelp("The teacher's weights [network.teacher_weights]: best.safetensors or a run/checkpoint folder from skd train, or converted official weights. (required unless --method none)", valueName: "path"))
    var teacher: String?

    @Option(help: ArgumentHelp("The teacher's architecture when its weights file names none [network.teacher], e.g. restormer. (default: the one the file names)", valueName: "preset"))
    var teacherPreset: String?

    @Option(help: ArgumentHelp("The method [distill.method]: skd, wave, output-kd, fitnet, dckd, none. (default: \(distillDefaults.method.rawValue))", valueName: "method"))
    var method: String?

    @Option(help: ArgumentHelp("Feature taps, comma-separated [distill.taps]. (default: the family's list: 7 for Restormer/DRSformer, 9 for Uformer)", valueName: "names"))
    var taps: String?

    @Option(help: ArgumentHelp("σ of the Gaussian-kernel feature distance [distill.sigma]. (default: \(distillDefaults.feature.sigma))", valueName: "σ"))
    var sigma: Double?

    @Option(help: ArgumentHelp("α1: weight of the two cross-attention branches [distill.alpha1]. (default: \(distillDefaults.feature.alpha1))", valueName: "w"))
    var alpha1: Double?

    @Option(help: ArgumentHelp("α2: weight of the feature loss [distill.alpha2]. (default: \(distillDefaults.alpha2))", valueName: "w"))
    var alpha2: Double?

    @Option(help: ArgumentHelp("α3: weight of the contrastive loss [distill.alpha3]. (default: \(distillDefaults.alpha3))", valueName: "w"))
    var alpha3: Double?

    @Option(help: ArgumentHelp("τ of the InfoNCE contrastive form [distill.tau]. (default: \(distillDefaults.tau))", valueName: "τ"))
    var tau: Double?

    @Flag(inversion: .prefixedNo, help: ArgumentHelp("Use the channel (C×C) cross-attention branch [distill.channel_branch]. (default: on)"))
    var channelBranch: Bool?

    @Flag(inversion: .prefixedNo, help: ArgumentHelp("Use the spatial (HW×HW) cross-attention branch [distill.spatial_branch]. (default: on)"))
    var spatialBranch: Bool?

    @Flag(inversion: .prefixedNo, help: ArgumentHelp("Use the contrastive loss [distill.contrastive]. (default: on)"))
    var contrastive: Bool?

    @Option(name: [.customLong("spatial-token-threshold"), .customLong("spatial-threshold")],
            help: ArgumentHelp("Apply the spatial branch only at taps with at most n tokens (H·W), or 'all' [distill.spatial_token_threshold]. (default: \(distillDefaults.feature.spatialTokenThreshold.map(String.init) ?? "all"))", valueName: "n|all"))
    var spatialTokenThreshold: String?

    @Option(help: ArgumentHelp("The contrastive form [distill.contrastive_form]: ratio, infonce. (default: \(distillDefaults.contrastiveForm.rawValue))", valueName: "form"))
    var contrastiveForm: String?

    @Option(help: ArgumentHelp("φ of the contrastive loss [distill.contrastive_features]: auto (vgg19 when --vgg-weights is given, else teacher), vgg19, teacher. (default: auto)", valueName: "source"))
    var contrastiveFeatures: String?

    @Option(help: ArgumentHelp("torchvision VGG-19 weights converted to safetensors [network.vgg_weights]. (default: none)", valueName: "file"))
    var vggWeights: String?

    @Option(help: ArgumentHelp("λ of the wavelet loss [distill.wave_lambda]. (default: \(distillDefaults.waveLambda))", valueName: "λ"))
    var waveLambda: Double?

    @Option(help: ArgumentHelp("Haar levels of the wavelet loss [distill.wave_levels]. (default: \(distillDefaults.waveLevels))", valueName: "n"))
    var waveLevels: Int?

    @Option(help: ArgumentHelp("Weight of L1 to the teacher's output for output-kd [distill.output_kd_weight]. (default: \(distillDefaults.outputKDWeight))", valueName: "w"))
    var outputKdWeight: Double?

    @Flag(help: ArgumentHelp("Start the student from the teacher's tensors, each sliced to the student's shape: first channels, first blocks of each level [network.init_from_teacher]. (default: off)"))
    var initFromTeacher = false

    @Option(help: ArgumentHelp("The wavelet loss's per-level distance [distill.wave_form]: squared (the authors' mse_loss), absolute. (default: \(distillDefaults.waveForm.rawValue))", valueName: "form"))
    var waveForm: String?

    @Option(help: ArgumentHelp("The feature distance of --method fitnet [distill.fitnet_distance]: l2, l1. (default: \(distillDefaults.fitnetDistance.rawValue))", valueName: "distance"))
    var fitnetDistance: String?

    func assignments() -> [(String, Any)] {
        var out: [(String, Any)] = []
        func add(_ key: String, _ value: Any?) { if let value { out.append((key, value)) } }
        add("distill.wave_form", waveForm); add("distill.fitnet_distance", fitnetDistance)
        if initFromTeacher { add("network.init_from_teacher", true) }
        add("network.teacher_weights", teacher); add("network.teacher", teacherPreset); add("network.vgg_weights", vggWeights)
        add("distill.method", method); add("distill.taps", taps); add("distill.sigma", sigma); add("distill.alpha1", alpha1)
        add("distill.alpha2", alpha2); add("distill.alpha3", alpha3); add("distill.tau", tau)
        add("distill.channel_branch", channelBranch); add("distill.spatial_branch", spatialBranch); add("distill.contrastive", contrastive)
        add("distill.spatial_token_threshold", spatialTokenThreshold); add("distill.contrastive_form", contrastiveForm)
        add("distill.contrastive_features", contrastiveFeatures); add("distill.wave_lambda", waveLambda)
        add("distill.wave_levels", waveLevels); add("distill.output_kd_weight", outputKdWeight)
        return out
    }
}

/// Resolves the options of a training command, checks the run, trains, and reports.
enum RunDriver {
    /// The resolved configuration: defaults < file < flags < `--set`, or the stored options of `--resume`.
    static func configuration(mode: RunMode, flags: RunFlags, assignments: [(String, Any)]) throws -> (RunConfiguration, URL?) {
        if let resume = flags.resume {
            if flags.config != nil || !flags.assignments.isEmpty || !assignments.isEmpty {
                let given = assignments.map(\.0) + (flags.config != nil ? ["--config"] : []) + flags.assignments
                throw RunConfigurationError("--resume continues with the options stored in the checkpoint; drop the other options (\(given.joined(separator: ", ")))")
            }
            let (configuration, checkpoint) = try RunConfiguration.resuming(URL(fileURLWithPath: resume))
            guard configuration.mode == mode else {
                throw RunConfigurationError("\(resume) is a '\(configuration.mode.rawValue)' run; continue it with skd \(configuration.mode.rawValue) --resume")
            }
            return (configuration, checkpoint)
        }
        var fileTree: [String: Any] = [:]
        let file = flags.config.map { URL(fileURLWithPath: $0) }
        if let file { fileTree = try RunConfiguration.optionsTree(yaml: file) }
        var tree = fileTree
        for (key, value) in assignments { try RunConfiguration.assign(value, at: key, in: &tree) }
        try RunConfiguration.apply(overrides: flags.assignments, to: &tree)
        let source = "options"
        do {
            return (try RunConfiguration(dictionary: tree, source: source, mode: mode), nil)
        } catch let error as RunConfigurationError {
            // When the file alone has the same problem, the message names the file.
            if let file {
                do { _ = try RunConfiguration(dictionary: fileTree, source: file.path, mode: mode) } catch let own as RunConfigurationError {
                    if own.message.hasSuffix(String(error.message.dropFirst(source.count))) { throw own }
                }
            }
            throw error
        }
    }

    /// Checks, trains, plots and prints the summary.
    ///
    /// - Parameter session: the ranks of an MPI job (Docs/distributed.md): they check together, rank 0 alone prints
    ///   and writes.
    @discardableResult
    static func run(_ configuration: RunConfiguration, checkpoint: URL?, stopAfter: Int?,
                    session: RunSession = .single, preflight: Bool = true) throws -> TrainingSummary {
        try session.checkLayout(configuration)
        // Rank 0 alone decodes every image once before work (collective: its error ends every rank).
        let prepared = try session.collective {
            try configuration.prepare(resuming: checkpoint != nil,
                                      preflight: preflight && session.isWriter ? { printError($0) } : nil)
        }
        try session.requireSame("\(prepared.training.count)") { "it found \($0) training pairs, rank 0 \($1); every rank must see the same data" }
        let c = prepared.configuration
        let trainer = prepared.makeTrainer()
        trainer.stopAfter = stopAfter
        session.attach(trainer)
        guard session.isWriter else { return try session.training { try trainer.run(resume: checkpoint) } }
        let studentName = c.student?.architecture ?? "?"
        printError("run folder: \(prepared.runDirectory.path)")
        printError(String(format: "%@: %@ with %.3f M parameters; %d training pairs%@",
                          c.mode == .train ? "model" : "student", studentName, Double(prepared.student.parameterCount) / 1e6,
                          prepared.training.count, prepared.validation.map { ", \($0.count) validation pairs" } ?? ""))
        if let teacher = prepared.teacher, let file = prepared.teacherFile {
            printError(String(format: "teacher: %@ (%.3f M parameters) from %@; method %@%@", c.student?.architecture ?? "?",
                              Double(teacher.parameterCount) / 1e6, file.path, c.distillation.method.rawValue,
                              prepared.featureExtractor.map { "; contrastive φ: \($0.summary)" } ?? ""))
        }
        if let initialization = prepared.initialization { printError("initial weights: \(initialization)") }
        // Under MPI the other ranks are already waiting in the first collective: a failure here ends the job.
        try session.training {
            try FileManager.default.createDirectory(at: prepared.runDirectory, withIntermediateDirectories: true)
            try Data(c.yamlString().utf8).write(to: prepared.runDirectory.appendingPathComponent("options.yml"))
        }
        defer { writePlot(prepared.runDirectory) }
        let summary = try session.training { try trainer.run(resume: checkpoint) }
        let best = summary.bestPSNR.map { String(format: "; best validation PSNR %.3f dB at iteration %d", $0, summary.bestIteration ?? 0) } ?? ""
        print(String(format: "finished %d iterations, %.2f images/s%@", summary.iterations, summary.imagesPerSecond, best))
        print("checkpoint: \(summary.checkpoint.path)")
        let weights = prepared.runDirectory.appendingPathComponent("best.safetensors")
        if FileManager.default.fileExists(atPath: weights.path) { print("best weights: \(weights.path)") }
        print("plot: \(prepared.runDirectory.appendingPathComponent("training.png").path)")
        if c.mode == .train { print("distil it with: skd distill --teacher \(prepared.runDirectory.path) --student PRESET ...") }
        return summary
    }

    /// `<run>/training.png` from `<run>/log.jsonl`, if there is a log.
    static func writePlot(_ run: URL) {
        let log = run.appendingPathComponent("log.jsonl")
        guard FileManager.default.fileExists(atPath: log.path) else { return }
        do {
            try TrainingPlot.render(log: log, title: run.lastPathComponent).write(to: run.appendingPathComponent("training.png"))
        } catch {
            printError("skd: warning: could not draw the training plot: \(describeError(error))")
        }
    }
}

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a network (a teacher, or any preset) with L1 to the ground truth.",
        discussion: "The run folder gets log.jsonl, checkpoints/, best.safetensors (with validation), samples/ and training.png; `skd distill --teacher <run folder>` accepts it as it is.")

    @Option(help: ArgumentHelp("The network to train [network.model]: \(ModelSpec.presetNames.joined(separator: ", ")); adjust it with --set network.model.dim=16. (required, here or in the options file)", valueName: "preset"))
    var model: String?

    @OptionGroup var flags: RunFlags

    func run() throws {
        let session = try RunSession.start()
        defer { session.finish() }
        try reportingErrors {
            try session.collective { try session.applyThreads(flags.threads) }
            let (configuration, checkpoint) = try session.collective { try RunDriver.configuration(
                mode: .train, flags: flags, assignments: flags.assignments(modelKey: "network.model", model: model)) }
            try RunDriver.run(configuration, checkpoint: checkpoint, stopAfter: flags.stopAfter, session: session,
                              preflight: !flags.skipPreflight)
        }
    }
}

struct DistillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "distill",
        abstract: "Distil a trained teacher into a student of the same family (skd, wave, output-kd, fitnet, dckd or none).",
        discussion: "Ablations of Table III: --no-channel-branch, --no-spatial-branch, --no-contrastive, --method.")

    @Option(help: ArgumentHelp("The student [network.student]: \(ModelSpec.presetNames.joined(separator: ", ")); adjust it with --set network.student.dim=8. (required, here or in the options file)", valueName: "preset"))
    var student: String?

    @OptionGroup var distill: DistillFlags
    @OptionGroup var flags: RunFlags

    func run() throws {
        let session = try RunSession.start()
        defer { session.finish() }
        try reportingErrors {
            try session.collective { try session.applyThreads(flags.threads) }
            let (configuration, checkpoint) = try session.collective { try RunDriver.configuration(
                mode: .distill, flags: flags,
                assignments: flags.assignments(modelKey: "network.student", model: student) + distill.assignments()) }
            try RunDriver.run(configuration, checkpoint: checkpoint, stopAfter: flags.stopAfter, session: session,
                              preflight: !flags.skipPreflight)
        }
    }
}
