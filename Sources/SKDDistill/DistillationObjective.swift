// The training objective of every method SwiftSKD offers, computed from one batch:
//   skd        L1(S_r, G) + α2·Σ_taps L_GK + α3·L_CL          (the paper, Eq. 5)
//   wave       L1(S_r, G) + λ·L_wave                          (Wavelet KD; squared form by default)
//   fitnet     L1(S_r, G) + α2·Σ_taps D(P(s), t)               (FitNet-style: projected L2 or L1, no attention)
//   dckd       L1(S_r, G) + α2·mean_taps L1(T_{>tap}(P(s)), G) (DCKD, our reading: student features through the teacher)
//   output-kd  L1(S_r, G) + w·L1(S_r, T_r)
//   none       L1(S_r, G)

import Foundation
import SKDModels
import SKDNN
import SKDTensor

/// The distillation method.
public enum DistillationMethod: String, Codable, CaseIterable, Sendable {
    /// Soft knowledge distillation: GK feature loss with cross-net attention, plus the contrastive loss.
    case skd
    /// Wavelet knowledge distillation (Haar details of the outputs).
    case wave
    /// L1 to the teacher's output.
    case outputKD = "output-kd"
    /// FitNet-style feature distillation: a 1×1 projector per tap and an L2 (or L1) distance to the teacher's
    /// feature, without cross-net attention or a contrastive term; isolates what the attention adds.
    case fitnet
    /// Dual cross KD, our reading of Fang et al. (JVCIR 2023): each projected student feature replaces the
    /// teacher's at its tap, the teacher's remaining blocks run on it, and their output is supervised by L1 to the
    /// ground truth (see `CascadableTeacher`).
    case dckd
    /// No teacher: L1 to the ground truth alone.
    case none
}

/// The feature distance of `fitnet`.
public enum FitNetDistance: String, Codable, CaseIterable, Sendable {
    /// Mean squared difference (FitNets' hint loss).
    case l2
    /// Mean absolute difference.
    case l1
}

/// Every weight and switch of the objective. Defaults are the paper's (and the issue's) values.
public struct DistillationOptions: Codable, Equatable, Sendable {
    /// The method.
    public var method: DistillationMethod = .skd
    /// The taps used by the feature loss (skd, fitnet) or cascaded into the teacher (dckd); `nil`: the family's
    /// default list (`DistillationTaps.defaults`; for dckd `DistillationTaps.dckdDefaults`).
    public var taps: [String]? = nil
    /// σ, α1, branch switches and the spatial token threshold.
    public var feature = FeatureLossOptions()
    /// α2: weight of the feature-level term: Σ_taps L_GK (skd), Σ_taps D(P(s), t) (fitnet), the cascade L1 (dckd).
    public var alpha2: Float = 0.2
    /// α3: weight of L_CL.
    public var alpha3: Float = 0.2
    /// Whether the contrastive loss is used (Table III ablation).
    public var contrastive = true
    /// The contrastive form (`ratio` by default; `infonce` is the paper's Eq. 4 as a loss).
    public var contrastiveForm: ContrastiveForm = .ratio
    /// τ of the InfoNCE form (the paper states 1e-6; 0.1 is the stable default).
    public var tau: Float = 0.1
    /// Per-layer weights of L_CL; VGG-19 relu1_1…relu5_1 by default (for teacher-encoder features: equal weights).
    public var contrastiveWeights: [Float]? = nil
    /// λ of the wavelet loss.
    public var waveLambda: Float = 0.4
    /// Haar levels J of the wavelet loss.
    public var waveLevels = 4
    /// The wavelet loss's per-level distance: `.squared` (the authors' code) or `.absolute`.
    public var waveForm: WaveletForm = .squared
    /// The feature distance of `fitnet`.
    public var fitnetDistance: FitNetDistance = .l2
    /// Weight of L1(S_r, T_r) for `output-kd`.
    public var outputKDWeight: Float = 1

    /// The defaults: SKD with the paper's weights and the ratio contrastive form.
    public init() {}
}

/// The default feature taps of each family (the distillation issue's lists).
public enum DistillationTaps {
    /// Restormer and DRSformer: 7 taps; Uformer: 9 taps.
    public static func defaults(for model: any TappedModel) -> [String] {
        let names = Set(model.tapNames)
        if names.contains("encoderlayer_0") {
            return ["encoderlayer_0", "encoderlayer_1", "encoderlayer_2", "encoderlayer_3", "conv",
                    "decoderlayer_0", "decoderlayer_1", "decoderlayer_2", "decoderlayer_3"]
        }
        return ["encoder_level1", "encoder_level2", "encoder_level3", "latent", "decoder_level3", "decoder_level2", "decoder_level1"]
    }

    /// DCKD's default cascade points: one encoder level, the bottleneck and one decoder level
    /// (`encoder_level2`, `latent`, `decoder_level2`), each costing one partial teacher pass with gradients.
    public static let dckdDefaults = ["encoder_level2", "latent", "decoder_level2"]

    /// A tap as a feature map: NCHW taps are returned as they are; token taps `[B, N, C]` (Uformer) are viewed as
    /// `[B, C, h, w]` with h/w the aspect ratio of the `height`×`width` input.
    ///
    /// - Parameters:
    ///   - tap: `[B, C, h, w]` or `[B, h·w, C]`.
    ///   - height, width: the network input's size.
    public static func featureMap(_ tap: Tensor, height: Int, width: Int) -> Tensor {
        if tap.rank == 4 { return tap }
        precondition(tap.rank == 3, "featureMap: a tap must be [B, C, H, W] or [B, N, C], got \(tap.shape)")
        let (b, n, c) = (tap.shape[0], tap.shape[1], tap.shape[2])
        let scale = (Double(height * width) / Double(n)).squareRoot()
        let h = Int((Double(height) / scale).rounded()), w = n / max(h, 1)
        precondition(h * w == n, "featureMap: \(n) tokens do not form a grid with the aspect of \(height)×\(width)")
        return tap.transposed(1, 2).reshaped([b, c, h, w])
    }
}

/// A frozen feature extractor φ for the contrastive loss.
public protocol ContrastiveFeatureExtractor: AnyObject {
    /// A short description for logs ("VGG-19 relu1_1…relu5_1", "teacher encoder levels 1–3").
    var summary: String { get }
    /// The default per-layer weights.
    var defaultWeights: [Float] { get }
    /// φ_l of a batch of images in [−1, 1].
    ///
    /// - Parameter images: `[B, 3, H, W]` in [−1, 1].
    /// - Returns: one feature tensor `[B, ...]` per layer.
    func features(_ images: Tensor) -> [Tensor]
}

/// φ = the frozen teacher's encoder taps (levels 1–3, equal weights), for users without VGG-19 weights.
///
/// When gradients must flow to the images (φ(S) in training) and the teacher is a `SegmentedEncoder`
/// (Restormer, DRSformer), the encoder is gradient-checkpointed block by block: the forward runs without
/// recording (the teacher's fused inference path), and the backward recomputes one block at a time, on slices of
/// the batch of about `recomputeBytes` of recorded activations, so that φ(S)'s graph never holds more than one
/// block's activations for a few samples. The values are those of the plain forward up to rounding (the fused and
/// composed paths agree to float32 rounding); the gradients are those of the composed ops.
public final class TeacherEncoderFeatures: ContrastiveFeatureExtractor {
    /// The frozen teacher whose taps are φ's layers.
    public let teacher: any TappedModel
    /// φ's layers, in order.
    public let taps: [String]
    /// The budget of recorded activations of one recomputed block (bytes): each block is recomputed on slices
    /// of the batch whose estimated graph fits it (at least one sample). `nil`: no checkpointing — φ(S) records
    /// the whole encoder's graph, as a plain forward does.
    public let recomputeBytes: Int?
    /// Names the taps used.
    public var summary: String { "teacher encoder taps \(taps.joined(separator: ", "))" }
    /// Equal weights.
    public var defaultWeights: [Float] { [Float](repeating: 1, count: taps.count) }

    /// Recorded bytes of one block per byte of its input: a transformer block records about 30 tensors the size
    /// of its input (the gated feed-forward's hidden layers are 2.66× and 5.3× as wide); a conservative round
    /// figure, used only to size the batch slices of the recomputation.
    static let recordedBytesPerInputByte = 40

    /// - Parameters:
    ///   - teacher: the frozen teacher.
    ///   - taps: the taps used as φ's layers; `nil`: the first three default taps (encoder levels 1–3).
    ///   - recomputeBytes: see `recomputeBytes`; 128 MiB by default (one sample per slice at a 48-channel 128² level).
    public init(teacher: any TappedModel, taps: [String]? = nil, recomputeBytes: Int? = 128 << 20) {
        self.teacher = teacher
        self.taps = taps ?? Array(DistillationTaps.defaults(for: teacher).prefix(3))
        self.recomputeBytes = recomputeBytes
    }

    /// The teacher's taps on `images` (`[B, 3, H, W]` in [−1, 1]); gradients flow through the frozen teacher to the images.
    public func features(_ images: Tensor) -> [Tensor] {
        if let recomputeBytes, GradMode.isEnabled, images.requiresGrad, let segmented = teacher as? SegmentedEncoder,
           let features = checkpointedFeatures(images, segments: segmented.encoderSegments, budget: recomputeBytes) {
            return features
        }
        // Only the encoder runs: the decoder's activations would be recorded for nothing when φ(S) needs gradients.
        let recorder = FeatureTaps(Set(taps), stopsEarly: true)
        _ = teacher.forward(images, taps: recorder)
        return taps.map { recorder[$0]! }
    }

    /// φ through checkpointed segments, up to the last wanted tap; `nil` when a tap is not among the segments'.
    private func checkpointedFeatures(_ images: Tensor, segments: [(tap: String?, run: (Tensor) -> Tensor)],
                                      budget: Int) -> [Tensor]? {
        let wanted = Set(taps)
        guard wanted.isSubset(of: Set(segments.compactMap(\.tap))) else { return nil }
        var found: [String: Tensor] = [:]
        var h = images
        for (index, segment) in segments.enumerated() {
            let perSample = h.count / max(h.shape[0], 1) * MemoryLayout<Float>.size * Self.recordedBytesPerInputByte
            let chunk = max(1, budget / max(perSample, 1))
            let run = segment.run
            h = checkpointed("teacher encoder segment \(index)", [h], batchChunk: chunk) { run($0[0]) }
            if let tap = segment.tap, wanted.contains(tap) {
                found[tap] = h
                if found.count == wanted.count { break }
            }
        }
        return taps.map { found[$0]! }
    }
}

/// The value of each loss term of one step, for logging.
public struct LossBreakdown {
    /// The objective to back-propagate, shape `[]`.
    public var total: Tensor
    /// Named scalar terms: `rec`, `gk`, `gk_plain`, `gk_channel`, `gk_spatial`, `cl`, `wave`, `okd`, `fitnet`,
    /// `dckd`, `total`.
    public var terms: [(name: String, value: Float)]
    /// The student's restored batch `[B, 3, H, W]` (without history).
    public var restored: Tensor
}

/// Computes the objective of a method for a teacher/student pair.
public final class DistillationObjective {
    /// The frozen teacher (`nil` for `none`).
    public let teacher: (any TappedModel)?
    /// The student being trained.
    public let student: any TappedModel
    /// The projectors (skd, fitnet, dckd), trained with the student.
    public let projectors: Projectors?
    /// φ of the contrastive loss (SKD with `contrastive` only).
    public let featureExtractor: ContrastiveFeatureExtractor?
    /// The options.
    public let options: DistillationOptions
    /// The taps used by the feature loss.
    public let taps: [String]
    /// Data-parallel training: turns this rank's contrastive negatives φ_l(I) `[b, ...]` into the global batch's
    /// `[B, ...]` (every rank's, in rank order), so each sample is contrasted with every degraded input of the
    /// global batch, as in one process. `nil`: the batch's own negatives.
    public var gatherNegatives: ((Tensor) -> Tensor)? = nil
    /// A study's shared teacher forward passes (`skd study`): when set, the teacher's output and taps of a batch
    /// are read from it (or computed once and stored) instead of recomputed; the values are the same.
    public var teacherCache: TeacherForwardCache? = nil

    /// - Parameters:
    ///   - teacher: the teacher (frozen and put in eval mode here); required unless the method is `none`.
    ///   - student: the student.
    ///   - featureExtractor: φ; `nil` with SKD + contrastive uses the teacher's encoder taps.
    ///   - probeSize: the side of the small input used once to discover the taps' channel counts.
    public init(teacher: (any TappedModel)?, student: any TappedModel, options: DistillationOptions,
                featureExtractor: ContrastiveFeatureExtractor? = nil, probeSize: Int = 32) {
        precondition(options.method == .none || teacher != nil, "DistillationObjective: method \(options.method.rawValue) needs a teacher")
        self.options = options
        self.student = student
        self.teacher = options.method == .none ? nil : teacher
        self.teacher?.freeze()
        self.teacher?.eval()
        if [.skd, .fitnet, .dckd].contains(options.method), let teacher {
            if options.method == .dckd {
                precondition(teacher is CascadableTeacher, "DistillationObjective: dckd needs a Restormer or DRSformer teacher, got \(type(of: teacher))")
            }
            let taps = options.taps ?? (options.method == .dckd ? DistillationTaps.dckdDefaults : DistillationTaps.defaults(for: teacher))
            self.taps = taps
            // One tiny no-grad pass through both networks tells the channel count of every tap.
            let probe = Tensor(zeros: [1, 3, probeSize, probeSize])
            let channels = { (model: any TappedModel) -> [Int] in
                let recorder = FeatureTaps(Set(taps))
                noGrad { _ = model.forward(probe, taps: recorder) }
                return taps.map { name -> Int in
                    guard let t = recorder[name] else { preconditionFailure("tap \(name) is not recorded by \(type(of: model)); it offers \(model.tapNames)") }
                    return DistillationTaps.featureMap(t, height: probeSize, width: probeSize).shape[1]
                }
            }
            projectors = Projectors(taps: taps, studentChannels: channels(student), teacherChannels: channels(teacher))
            self.featureExtractor = options.method == .skd && options.contrastive ? (featureExtractor ?? TeacherEncoderFeatures(teacher: teacher)) : nil
        } else {
            taps = []
            projectors = nil
            self.featureExtractor = nil
        }
    }

    /// Everything the optimizer updates: the student's trainable parameters, then the projectors'.
    public var trainableParameters: [Tensor] { student.trainableParameters() + (projectors?.trainableParameters() ?? []) }

    /// The objective on one batch.
    ///
    /// - Parameters:
    ///   - input: degraded images `[B, 3, H, W]` in [−1, 1].
    ///   - target: ground truth `[B, 3, H, W]` in [−1, 1].
    public func callAsFunction(input: Tensor, target: Tensor) -> LossBreakdown {
        let (h, w) = (input.shape[2], input.shape[3])
        var teacherOut: Tensor? = nil
        // dckd reads only the teacher's encoder skips: its forward stops once they are recorded.
        let cascading = options.method == .dckd ? teacher as? CascadableTeacher : nil
        // φ(I) with the teacher's own encoder as φ is what the teacher's forward on the input computes anyway: the
        // taps are recorded there (same ops on the same batch, the same values) instead of a second encoder pass.
        let phiOfInput = (featureExtractor as? TeacherEncoderFeatures).flatMap { phi -> [String]? in
            guard let teacher, (phi.teacher as AnyObject) === (teacher as AnyObject) else { return nil }
            return phi.taps
        }
        let teacherTaps = cascading.map { FeatureTaps(Set($0.skipTaps), stopsEarly: true) } ?? FeatureTaps(Set(taps + (phiOfInput ?? [])))
        if let teacher, let cache = teacherCache {
            let needed = teacherTaps.wanted ?? []
            let shared = cache.forward(teacher, input: input, needing: needed)
            for name in needed.sorted() { teacherTaps.record(name, shared.taps[name]!) }
            if cascading == nil { teacherOut = shared.output }
        } else if let teacher {
            let out = noGrad { teacher.forward(input, taps: teacherTaps) }
            if cascading == nil { teacherOut = out }
        }
        let studentTaps = FeatureTaps(Set(taps))
        let restored = student.forward(input, taps: projectors == nil ? nil : studentTaps)
        let rec = l1Loss(restored, target)
        var total = rec
        var terms: [(String, Float)] = [("rec", rec.item)]

        switch options.method {
        case .none:
            break
        case .outputKD:
            let okd = l1Loss(restored, teacherOut!)
            total = total + okd * options.outputKDWeight
            terms.append(("okd", okd.item))
        case .wave:
            let wave = waveletLoss(student: restored, teacher: teacherOut!, levels: options.waveLevels, form: options.waveForm)
            total = total + wave * options.waveLambda
            terms.append(("wave", wave.item))
        case .fitnet:
            var hint: Tensor? = nil
            for tap in taps {
                let s = projectors!.project(DistillationTaps.featureMap(studentTaps[tap]!, height: h, width: w), tap: tap)
                let t = DistillationTaps.featureMap(teacherTaps[tap]!, height: h, width: w)
                let term = options.fitnetDistance == .l2 ? mseLoss(s, t) : l1Loss(s, t)
                hint = hint.map { $0 + term } ?? term
            }
            if let hint {
                total = total + hint * options.alpha2
                terms.append(("fitnet", hint.item))
            }
        case .dckd:
            var cross: Tensor? = nil
            for tap in taps {
                let s = projectors!.project(studentTaps[tap]!, tap: tap)
                let term = l1Loss(cascading!.cascade(from: tap, feature: s, skips: teacherTaps, input: input), target)
                cross = cross.map { $0 + term } ?? term
            }
            if let cross {
                let mean = cross * (1 / Float(taps.count))
                total = total + mean * options.alpha2
                terms.append(("dckd", mean.item))
            }
        case .skd:
            // The contrastive branch runs first and, when recording, is back-propagated at once into a detached copy
            // of the student's output: the graph of φ(S) through the frozen teacher's encoder is freed before the
            // feature-loss graphs are built. The objective carries it as the linear surrogate ⟨S_r, g⟩ − ⟨S_r, g⟩|const
            // + α3·L_CL|const, whose value is α3·L_CL and whose gradient into S_r is g = ∂(α3·L_CL)/∂S_r.
            var contrastive: (value: Float, scaled: Tensor)? = nil
            if let phi = featureExtractor {
                let early = GradMode.isEnabled && restored.requiresGrad
                let source = early ? restored.detached() : restored
                if early { source.requiresGrad = true }
                let fs = phi.features(source)
                let ft = noGrad { phi.features(teacherOut!) }
                let ownNegatives = phiOfInput.map { $0.map { teacherTaps[$0]! } } ?? noGrad { phi.features(input) }
                // Data-parallel runs gather every rank's negatives, so each sample sees the global batch's.
                let fi = gatherNegatives.map { ownNegatives.map($0) } ?? ownNegatives
                let weights = options.contrastiveWeights ?? phi.defaultWeights
                precondition(weights.count == fs.count, "contrastive weights: \(weights.count) for \(fs.count) layers of \(phi.summary)")
                var cl: Tensor? = nil
                for l in 0..<fs.count {
                    let term = contrastiveLayerLoss(student: fs[l], teacher: ft[l], degraded: fi[l],
                                                    form: options.contrastiveForm, tau: options.tau) * weights[l]
                    cl = cl.map { $0 + term } ?? term
                }
                if let cl {
                    let scaled = cl * options.alpha3
                    if early, scaled.requiresGrad {
                        scaled.backward()
                        let linear = (restored * source.grad!).sum()
                        contrastive = (cl.item, linear - linear.detached() + Tensor(scaled.item))
                    } else {
                        contrastive = (cl.item, scaled)
                    }
                }
            }
            var gk: Tensor? = nil
            var plain: Float = 0, channel: Float = 0, spatial: Float = 0
            for tap in taps {
                let s = projectors!.project(DistillationTaps.featureMap(studentTaps[tap]!, height: h, width: w), tap: tap)
                let t = DistillationTaps.featureMap(teacherTaps[tap]!, height: h, width: w)
                let term = featureLoss(projected: s, teacher: t, options: options.feature)
                plain += term.plain.item
                channel += term.channel?.item ?? 0
                spatial += term.spatial?.item ?? 0
                gk = gk.map { $0 + term.total } ?? term.total
            }
            if let gk {
                total = total + gk * options.alpha2
                terms += [("gk", gk.item), ("gk_plain", plain), ("gk_channel", channel), ("gk_spatial", spatial)]
            }
            if let contrastive {
                total = total + contrastive.scaled
                terms.append(("cl", contrastive.value))
            }
        }
        terms.append(("total", total.item))
        return LossBreakdown(total: total, terms: terms, restored: restored.detached())
    }
}
