// The one evaluation loop: whole-image restoration of a paired dataset by one or more models, with PSNR/SSIM (RGB
// and Y) against the clean targets. The trainer's periodic validation and `skd eval` (and `skd demo`) both call it.

import Dispatch
import Foundation
import SKDImage
import SKDModels
import SKDTensor

/// Mean image-quality scores over an evaluation set (each image weighs the same).
public struct QualityScores: Codable, Equatable, Sendable {
    /// PSNR on RGB, dB.
    public var psnr: Double
    /// SSIM on RGB (mean over the channels), in [−1, 1].
    public var ssim: Double
    /// PSNR on the luma channel Y (ITU-R BT.601, as the papers report), dB.
    public var psnrY: Double
    /// SSIM on the luma channel Y.
    public var ssimY: Double

    /// Scores from their four values.
    public init(psnr: Double, ssim: Double, psnrY: Double, ssimY: Double) {
        self.psnr = psnr; self.ssim = ssim; self.psnrY = psnrY; self.ssimY = ssimY
    }
}

/// How `RestorationEvaluation.run` restores and measures.
public struct EvaluationOptions: Equatable, Sendable {
    /// The pixel range the models work in: `.minusOneToOne` for SwiftSKD-trained weights, `.zeroToOne` for the
    /// official released ones.
    public var range: PixelRange = .minusOneToOne
    /// Pixels removed from every side of both images before measuring.
    public var border = 0
    /// Restore in overlapping tiles of this side (`Inference.restore(_:_:tile:tileOverlap:)`); `nil`: whole images.
    public var tile: Int? = nil
    /// The overlap of neighbouring tiles, pixels.
    public var tileOverlap = 32
    /// At most this many images (the first ones, in dataset order); 0: all.
    public var maxImages = 0
    /// The seed of synthetic degradations: image `i`'s degraded input derives from (seed, i), so every model and
    /// every evaluation sees the same inputs.
    public var seed: UInt64 = 0
    /// Also score the degraded input itself (`EvaluationResult.input`).
    public var scoreInput = false
    /// Time each restoration (`EvaluationResult.millisecondsPerImage`), after one untimed warm-up pass per model on
    /// the first image (first-touch allocations and thread start-up are not the model's cost).
    public var timed = false

    /// Whole images in [−1, 1], no border, every image, seed 0, no input scores, no timing.
    public init() {}
}

/// One restored image, handed to `RestorationEvaluation.run`'s `restored` callback (to save samples, say).
public struct RestoredImage {
    /// The image's index in the dataset.
    public var index: Int
    /// The pair's name (a relative path for folder datasets).
    public var name: String
    /// The index of the model in the list given to `run`.
    public var model: Int
    /// The restoration, 8-bit (clamped and rounded from the model's output in `EvaluationOptions.range`).
    public var image: Image
}

/// What `RestorationEvaluation.run` measured.
public struct EvaluationResult {
    /// The mean scores of each model, in the order given.
    public var models: [QualityScores]
    /// The mean scores of the degraded input itself, when `EvaluationOptions.scoreInput`.
    public var input: QualityScores?
    /// Each model's mean wall time of one restoration, milliseconds, when `EvaluationOptions.timed`.
    public var millisecondsPerImage: [Double]?
    /// The images measured (read successfully).
    public var images: Int
    /// The names of the images skipped because they could not be read.
    public var skipped: [String]
}

/// The evaluation loop shared by the trainer's validation and `skd eval`.
public enum RestorationEvaluation {
    /// Restores every image of `source` with each of `models` and scores the results against the clean targets.
    ///
    /// Each pair is read once (`ValidationIterator`, full size: input and target `[1, 3, H, W]` in
    /// `options.range`), restored by every model (`Inference.restore`, output `[1, 3, H, W]`), converted to an 8-bit
    /// `Image` and measured with `Metrics` on RGB and Y. The models are put in eval mode. An image that cannot be
    /// read is skipped (reported through `skipped`) instead of ending the evaluation.
    ///
    /// - Parameters:
    ///   - models: the networks, each taking and returning `[N, 3, H, W]`.
    ///   - source: the evaluation pairs (a paired folder, or clean images with a synthetic degradation).
    ///   - options: range, tiling, border, image count, seed, timing.
    ///   - restored: called with every restoration (after it was measured); may write it to disk.
    ///   - skipped: called with the name of each unreadable pair and the error.
    ///   - finished: called after each image with (images done, images in all, name).
    /// - Returns: the means, or `nil` when no image could be read.
    /// - Throws: only what `restored` throws.
    public static func run(_ models: [any TappedModel], on source: any PairedImageSource, options: EvaluationOptions = EvaluationOptions(),
                           restored: (RestoredImage) throws -> Void = { _ in },
                           skipped: (String, Error) -> Void = { _, _ in },
                           finished: (Int, Int, String) -> Void = { _, _, _ in }) throws -> EvaluationResult? {
        let iterator = ValidationIterator(source: source, range: options.range, seed: options.seed)
        let count = options.maxImages > 0 ? min(options.maxImages, source.count) : source.count
        // Sums of psnr, ssim, psnrY, ssimY per model, then the input's; milliseconds per model.
        var sums = [[Double]](repeating: [0, 0, 0, 0], count: models.count + 1)
        var milliseconds = [Double](repeating: 0, count: models.count)
        var skippedNames: [String] = []
        for model in models { model.eval() }
        var measured = 0
        for index in 0..<count {
            let sample: ValidationSample
            do { sample = try iterator.sample(at: index) } catch {
                skippedNames.append(source.name(at: index))
                skipped(source.name(at: index), error)
                continue
            }
            measured += 1
            let target = sample.targetImage
            func measure(_ image: Image, into row: Int) {
                sums[row][0] += Metrics.psnr(image, target, border: options.border)
                sums[row][1] += Metrics.ssim(image, target, border: options.border)
                sums[row][2] += Metrics.psnr(image, target, space: .y, border: options.border)
                sums[row][3] += Metrics.ssim(image, target, space: .y, border: options.border)
            }
            if options.scoreInput { measure(sample.inputImage.quantized(), into: models.count) }
            for (m, model) in models.enumerated() {
                if options.timed && measured == 1 {
                    _ = Inference.restore(model, sample.input, tile: options.tile, tileOverlap: options.tileOverlap)
                }
                let began = DispatchTime.now()
                let output = Inference.restore(model, sample.input, tile: options.tile, tileOverlap: options.tileOverlap)
                milliseconds[m] += Double(DispatchTime.now().uptimeNanoseconds - began.uptimeNanoseconds) / 1e6
                let image = Image(tensor: output, range: options.range)
                measure(image, into: m)
                try restored(RestoredImage(index: index, name: sample.name, model: m, image: image))
            }
            finished(index + 1, count, sample.name)
        }
        guard measured > 0 else { return nil }
        let n = Double(measured)
        func mean(_ row: Int) -> QualityScores {
            QualityScores(psnr: sums[row][0] / n, ssim: sums[row][1] / n, psnrY: sums[row][2] / n, ssimY: sums[row][3] / n)
        }
        return EvaluationResult(models: models.indices.map(mean), input: options.scoreInput ? mean(models.count) : nil,
                                millisecondsPerImage: options.timed ? milliseconds.map { $0 / n } : nil,
                                images: measured, skipped: skippedNames)
    }
}
