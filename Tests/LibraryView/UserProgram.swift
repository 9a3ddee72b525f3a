// A library user's program (type-checked by LibraryViewTests): only `import SwiftSKD`, no package access.
// Compiled against the built modules without -package-name, so `package` symbols are invisible here exactly as
// for a package that depends on SwiftSKD. It builds models, loads safetensors weights, restores an image tensor,
// trains a step by hand and distils through the trainer: what library users must keep being able to do.
import Foundation
import SwiftSKD

/// Everything a user does through the public API (type-checked, never run).
func userProgram(weights: URL, trainRoot: URL) throws {
    // Build a model from a preset (case-insensitive) or a configuration, and load safetensors weights.
    let spec = try ModelSpec.preset("Restormer-S")
    let model = spec.makeModel()
    let file = try SafeTensors.read(weights)
    try model.load(file.tensors, strict: true)
    let drs = DRSformer(config: DRSformerConfig(dim: 8, numBlocks: [1, 1, 1, 1], layerNormType: .biasFree, mefc: false))
    let uformer = Uformer(config: UformerConfig(embedDim: 16, tokenMlp: .leff))
    _ = (drs.patchEmbed, uformer.encoderLayer0, drs.multiplyAccumulates(height: 64, width: 64))

    // Run it.
    model.eval()
    let input = Tensor(shape: [1, 3, 16, 16], values: [Float](repeating: 0.5, count: 3 * 16 * 16))
    let restored = noGrad { Inference.restore(model, input) }
    print(restored.shape, restored.values.prefix(4))

    // Train a step by hand.
    model.train()
    let optimizer = Adam(parameters: model.trainableParameters(), lr: 1e-4)
    let loss = l1Loss(model(input), input)
    loss.backward()
    optimizer.step()
    optimizer.zeroGrad()

    // Distil: an objective over a frozen teacher and a student, and the trainer.
    let teacher = Restormer(config: try unwrapped(RestormerConfig.preset("restormer-s")))
    var options = DistillationOptions()
    options.method = .skd
    let objective = DistillationObjective(teacher: teacher, student: model, options: options)
    let breakdown = objective(input: input, target: input)
    _ = breakdown
    var training = TrainingOptions()
    training.iterations = 2
    let trainer = Trainer(objective: objective, training: try PairedDataset(root: trainRoot), validation: nil,
                          options: training, runDirectory: trainRoot.appendingPathComponent("run"), configJSON: "{}")
    _ = try trainer.run()
    try SafeTensors.write(model.stateDict(), to: weights)
}

/// The value, or an error when it is `nil`.
func unwrapped<T>(_ value: T?) throws -> T {
    guard let value else { throw CocoaError(.coderValueNotFound) }
    return value
}
