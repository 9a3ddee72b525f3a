// Block-level and end-to-end benchmarks: the fused kernels and attention blocks of the three families at the
// shapes of their first level at 512×512, the tiled spatial MCA of the distillation loss, 512×512 inference
// of every preset, and one distillation training step.

import Foundation
import SKDDistill
import SKDModels
import SKDNN
import SKDTensor

/// A fresh model of a preset, in eval mode (ParameterInit's seeded default initialisation).
func presetModel(_ name: String) -> any TappedModel & ModelStatistics {
    guard let spec = try? ModelSpec.preset(name) else { fatalError("skd-bench: unknown preset \(name)") }
    let model = spec.makeModel()
    model.eval()
    return model
}

/// Inference of one `1×3×side×side` image through `Inference.restore` (no grad, padded to the model's multiple).
func inferenceBenchmark(preset: String, side: Int = 512) -> Benchmark {
    // Counted on the instance `prepare` builds: building a model only to count is as slow as the real one.
    let macs = Box(0.0)
    return Benchmark("infer \(preset) 1x3x\(side)x\(side)", flops: 2 * macs.value, settings: .long) {
        let model = presetModel(preset)
        macs.value = Double(model.multiplyAccumulates(height: side, width: side))
        let image = benchTensor([1, 3, side, side], seed: 11).clamped(-1, 1)
        return { _ = Inference.restore(model, image) }
    }
}

/// Inference of the demo's distilled student (Restormer dim 8, blocks [1,1,1,1], one refinement block, 4 heads
/// [1,2,4,8]) on a `1×3×512×768` photograph: the narrow layers (8–64 channels) that distilled students deploy.
func narrowStudentBenchmark(dim: Int = 8) -> Benchmark {
    let macs = Box(0.0)
    return Benchmark("infer restormer dim\(dim) [1,1,1,1] 1x3x512x768", flops: 2 * macs.value, settings: .long) {
        var config = RestormerConfig()
        config.dim = dim; config.numBlocks = [1, 1, 1, 1]; config.numRefinementBlocks = 1
        ParameterInit.seed(0)
        let model = Restormer(config: config)
        model.eval()
        macs.value = Double(model.multiplyAccumulates(height: 512, width: 768))
        let image = benchTensor([1, 3, 512, 768], seed: 11).clamped(-1, 1)
        return { _ = Inference.restore(model, image) }
    }
}

/// One distillation step as the trainer runs it: teacher forward without grad, student forward and backward,
/// Adam. `method` `.outputKD` has L1 losses only (reconstruction + output KD); `.skd` is the full SKD objective
/// with the default options (spatial MCA at taps of at most 4096 tokens).
///
/// `checkpoint: false` records φ(S)'s whole teacher-encoder graph instead of recomputing it block by block in the
/// backward (`TeacherEncoderFeatures(recomputeBytes: nil)`), for comparison (about 12 GB at batch 8).
func trainingStepBenchmark(teacher: String = "restormer", student: String = "restormer-s", method: DistillationMethod,
                           contrastive: Bool = true, batch: Int = trainingBatch, side: Int = 128,
                           checkpoint: Bool = true) -> Benchmark {
    let label = (method == .outputKD ? "L1 losses" : contrastive ? "full SKD loss" : "SKD loss w/o contrastive")
        + (checkpoint ? "" : " uncheckpointed")
    // Forward + backward of the student ≈ 3× its forward; the teacher runs forward only. Loss terms not counted.
    let flops = Box(0.0)
    // The full SKD step takes most of a minute at batch 8: two samples, no warm-up.
    let settings = method == .skd && contrastive ? RunSettings(warmup: 0, minSamples: 2, minSeconds: 0, maxSamples: 2) : .long
    return Benchmark("train step \(teacher)->\(student) \(label) \(batch)x3x\(side)x\(side)", flops: flops.value,
                     settings: settings) {
        let teacherModel = presetModel(teacher)
        let studentModel = presetModel(student)
        flops.value = 2 * Double(batch) * (Double(teacherModel.multiplyAccumulates(height: side, width: side))
                                           + 3 * Double(studentModel.multiplyAccumulates(height: side, width: side)))
        studentModel.train()
        var options = DistillationOptions()
        options.method = method
        options.contrastive = contrastive
        let phi = checkpoint ? nil : TeacherEncoderFeatures(teacher: teacherModel, recomputeBytes: nil)
        let objective = DistillationObjective(teacher: teacherModel, student: studentModel, options: options, featureExtractor: phi)
        let optimizer = Adam(parameters: objective.trainableParameters, lr: 2e-4)
        let input = benchTensor([batch, 3, side, side], seed: 12).clamped(-1, 1)
        let target = benchTensor([batch, 3, side, side], seed: 13).clamped(-1, 1)
        return {
            optimizer.zeroGrad()
            let loss = objective(input: input, target: target)
            loss.total.backward()
            optimizer.step()
        }
    }
}

/// One training step at the scale of `skd demo` (teacher Restormer dim 16 [1,2,2,4], student dim 8 [1,1,1,1], one
/// refinement block each, batch 4, 64×64 crops, spatial threshold 1024): `.none` (L1 only, no teacher) or the full
/// SKD objective (teacher-encoder φ), as the demo's students train.
func demoTrainingStepBenchmark(method: DistillationMethod) -> Benchmark {
    let label = method == .none ? "L1 only" : "full SKD loss"
    return Benchmark("train step demo restormer16->restormer8 \(label) 4x3x64x64", settings: .long) {
        func make(_ dim: Int, _ blocks: [Int]) -> any TappedModel & ModelStatistics {
            var config = RestormerConfig()
            config.dim = dim; config.numBlocks = blocks; config.numRefinementBlocks = 1
            return Restormer(config: config)
        }
        ParameterInit.seed(0)
        let teacherModel = make(16, [1, 2, 2, 4]), studentModel = make(8, [1, 1, 1, 1])
        teacherModel.eval()
        studentModel.train()
        var options = DistillationOptions()
        options.method = method
        options.feature.spatialTokenThreshold = 1024
        let objective = DistillationObjective(teacher: method == .none ? nil : teacherModel, student: studentModel, options: options)
        let optimizer = Adam(parameters: objective.trainableParameters, lr: 1e-3)
        let input = benchTensor([4, 3, 64, 64], seed: 12).clamped(-1, 1)
        let target = benchTensor([4, 3, 64, 64], seed: 13).clamped(-1, 1)
        return {
            optimizer.zeroGrad()
            let loss = objective(input: input, target: target)
            loss.total.backward()
            optimizer.step()
        }
    }
}

/// The batch of the training-step benchmarks (`--train-batch`).
var trainingBatch = 8

/// Restormer's channel LayerNorm (WithBias) on `[1, c, side, side]`: reads x once and writes y once.
func layerNormBenchmark(channels c: Int, side: Int) -> Benchmark {
    Benchmark("layernorm channels 1x\(c)x\(side)x\(side)", bytes: 8 * Double(c * side * side)) {
        let x = benchTensor([1, c, side, side], seed: 21)
        let w = benchTensor([c], seed: 22), b = benchTensor([c], seed: 23)
        return { noGrad { _ = x.layerNormChannels(weight: w, bias: b) } }
    }
}

/// The engine's element-wise GELU on `count` values.
func geluBenchmark(count: Int) -> Benchmark {
    Benchmark("gelu \(count / 1_048_576)Mi elements", bytes: 8 * Double(count)) {
        let x = benchTensor([count], seed: 24)
        return { noGrad { _ = x.gelu() } }
    }
}

/// GDFN's gate: `gelu(x₁)·x₂` alone, and fused with the depthwise 3×3 (the inference path).
func gateBenchmarks(hidden: Int, side: Int) -> [Benchmark] {
    let plane = Double(side * side)
    return [
        Benchmark("gdfn gate gelu(x1)*x2 1x\(2 * hidden)x\(side)x\(side)", bytes: 12 * Double(hidden) * plane) {
            let x = benchTensor([1, 2 * hidden, side, side], seed: 25)
            return { noGrad { _ = x.gdfnGate() } }
        },
        Benchmark("gdfn dwconv3x3+gate 1x\(2 * hidden)x\(side)x\(side)", flops: 2 * 9 * Double(2 * hidden) * plane,
                  bytes: 12 * Double(hidden) * plane) {
            let x = benchTensor([1, 2 * hidden, side, side], seed: 26)
            let w = benchTensor([2 * hidden, 1, 3, 3], seed: 27)
            return { _ = Tensor.gdfnDepthwiseGate(x, weight: w, bias: nil) }
        },
    ]
}

/// Row softmax over `[rows, length]`.
func softmaxBenchmark(rows: Int, length: Int) -> Benchmark {
    Benchmark("softmax rows \(rows)x\(length)", bytes: 8 * Double(rows * length)) {
        let x = benchTensor([rows, length], seed: 28)
        return { noGrad { _ = x.softmax() } }
    }
}

/// Restormer's MDTA (1×1 qkv, depthwise 3×3, channel attention, 1×1 out) on `[1, dim, side, side]`.
func mdtaBenchmark(dim: Int, heads: Int, side: Int) -> Benchmark {
    let block = RestormerAttention(dim: dim, numHeads: heads, bias: false)
    return Benchmark("mdta block dim \(dim) heads \(heads) 1x\(dim)x\(side)x\(side)",
                     flops: 2 * Double(block.multiplyAccumulates(height: side, width: side))) {
        let x = benchTensor([1, dim, side, side], seed: 31)
        return { noGrad { _ = block(x) } }
    }
}

/// A Uformer LeWin block (LayerNorm, shifted 8×8 window attention, LeFF) on `[1, side², dim]` tokens.
func lewinBenchmark(dim: Int, heads: Int, side: Int, window: Int = 8) -> Benchmark {
    let tokens = Double(side * side), hidden = Double(4 * dim)
    // q, k, v and output projections; q·kᵀ and attn·v inside each window; LeFF's two linears and depthwise 3×3.
    let macs = tokens * (4 * Double(dim * dim) + 2 * Double(window * window * dim) + 2 * Double(dim) * hidden + 9 * hidden)
    return Benchmark("uformer lewin block dim \(dim) win \(window) 1x\(side * side)x\(dim)", flops: 2 * macs) {
        let block = UformerLeWinBlock(dim: dim, resolution: side, numHeads: heads, window: window, shift: window / 2,
                                      modulator: true)
        block.eval()
        let x = benchTensor([1, side * side, dim], seed: 32)
        return { noGrad { _ = block(x, height: side, width: side) } }
    }
}

/// A whole transformer block of Restormer / DRSformer under noGrad (the fused, banded inference paths).
func transformerBlockBenchmarks(dim: Int, side: Int) -> [Benchmark] {
    let restormer = RestormerTransformerBlock(dim: dim, numHeads: 1, hiddenFeatures: Int(Double(dim) * 2.66), bias: false,
                                              layerNormType: .withBias)
    let drsformer = DRSformerTransformerBlock(dim: dim, numHeads: 1, ffnExpansionFactor: 2.66, bias: false,
                                              layerNormType: .withBias)
    return [
        Benchmark("restormer block inference dim \(dim) 1x\(dim)x\(side)x\(side)",
                  flops: 2 * Double(restormer.multiplyAccumulates(height: side, width: side))) {
            let x = benchTensor([1, dim, side, side], seed: 38)
            return { noGrad { _ = restormer(x) } }
        },
        Benchmark("drsformer block inference dim \(dim) 1x\(dim)x\(side)x\(side)",
                  flops: 2 * Double(drsformer.multiplyAccumulates(height: side, width: side))) {
            let x = benchTensor([1, dim, side, side], seed: 39)
            return { noGrad { _ = drsformer(x) } }
        },
    ]
}

/// DRSformer's top-k sparse attention block on `[1, dim, side, side]`.
func topKAttentionBenchmark(dim: Int, heads: Int, side: Int) -> Benchmark {
    let block = DRSformerAttention(dim: dim, numHeads: heads, bias: false)
    return Benchmark("drsformer top-k attention dim \(dim) 1x\(dim)x\(side)x\(side)",
                     flops: 2 * Double(block.multiplyAccumulates(height: side, width: side))) {
        let x = benchTensor([1, dim, side, side], seed: 33)
        return { noGrad { _ = block(x) } }
    }
}

/// DRSformer's MSFN feed-forward (depthwise 3×3 and 5×5, grouped 3×3/5×5 with 2 channels per group).
func msfnBenchmark(dim: Int, side: Int) -> Benchmark {
    let block = DRSformerFeedForward(dim: dim, ffnExpansionFactor: 2.66, bias: false)
    return Benchmark("drsformer msfn dim \(dim) 1x\(dim)x\(side)x\(side)",
                     flops: 2 * Double(block.multiplyAccumulates(height: side, width: side))) {
        let x = benchTensor([1, dim, side, side], seed: 34)
        return { noGrad { _ = block(x) } }
    }
}

/// The spatial branch of MCA at N = side² tokens: tiled (production) or dense (reference), forward only or
/// forward + backward. FLOPs count the dense formula's products (2·C·N² MAC forward, 6·C·N² with the
/// backward), so the tiled path's recomputation shows as a lower rate, not as more work.
func spatialMCABenchmark(channels c: Int, side: Int, dense: Bool, backward: Bool) -> Benchmark {
    let n = Double(side * side)
    let macs = (backward ? 6 : 2) * Double(c) * n * n
    let name = "mca spatial \(dense ? "dense" : "tiled") \(backward ? "fwd+bwd" : "fwd") N=\(side * side) C=\(c)"
    return Benchmark(name, flops: 2 * macs, settings: RunSettings(warmup: 1, minSamples: 3, minSeconds: 0.5, maxSamples: 10)) {
        let s = benchTensor([1, c, side, side], seed: 35), t = benchTensor([1, c, side, side], seed: 36)
        let attend: (Tensor, Tensor) -> Tensor = dense
            ? { spatialCrossAttentionDense(student: $0, teacher: $1) }
            : { spatialCrossAttention(student: $0, teacher: $1) }
        if !backward { return { noGrad { _ = attend(s, t) } } }
        s.requiresGrad = true
        let seed = benchTensor([1, c, side, side], seed: 37)
        return {
            attend(s, t).backward(seed)
            s.zeroGrad()
        }
    }
}

/// Blocks and fused kernels, in table order.
let blockBenchmarks: [Benchmark] = [
    layerNormBenchmark(channels: 32, side: 512),
    layerNormBenchmark(channels: 48, side: 256),
    geluBenchmark(count: 16 << 20),
    softmaxBenchmark(rows: 4096, length: 4096),
] + gateBenchmarks(hidden: 85, side: 512) + [
    mdtaBenchmark(dim: 32, heads: 1, side: 512),
] + transformerBlockBenchmarks(dim: 32, side: 512) + [
    lewinBenchmark(dim: 32, heads: 1, side: 512),
    topKAttentionBenchmark(dim: 32, heads: 1, side: 512),
    msfnBenchmark(dim: 32, side: 512),
    spatialMCABenchmark(channels: 48, side: 128, dense: false, backward: false),
    spatialMCABenchmark(channels: 48, side: 128, dense: false, backward: true),
    spatialMCABenchmark(channels: 48, side: 128, dense: true, backward: false),
    spatialMCABenchmark(channels: 48, side: 64, dense: false, backward: true),
    spatialMCABenchmark(channels: 48, side: 64, dense: true, backward: true),
]

/// 512×512 inference of every preset, then the training steps.
var endToEndBenchmarks: [Benchmark] { ModelSpec.presetNames.map { inferenceBenchmark(preset: $0) } + [
    narrowStudentBenchmark(),
    trainingStepBenchmark(method: .outputKD),
    trainingStepBenchmark(method: .skd, contrastive: false),
    trainingStepBenchmark(method: .skd, batch: skdTrainingBatch),
    trainingStepBenchmark(method: .skd, batch: skdTrainingBatch, checkpoint: false),
    demoTrainingStepBenchmark(method: .none),
    demoTrainingStepBenchmark(method: .skd),
] }

/// The batch of the full-SKD training steps (`--skd-batch`; default 8: about 6 GB, 12 GB uncheckpointed).
var skdTrainingBatch = 8
