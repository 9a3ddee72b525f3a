// Inference on images of any size: reflect-pad to the model's multiple and crop back, optionally in overlapping
// tiles for images too large to process at once.

import SKDNN
import SKDTensor

/// Whole-image restoration with a trained model, without recording gradients.
public enum Inference {
    /// Restores `input`, padding it to the model's `sizeMultiple` (reflect where the image is large enough,
    /// zeros otherwise) and cropping the result back.
    ///
    /// - Parameters:
    ///   - model: any `TappedModel`; put it in eval mode first.
    ///   - input: `[N, 3, H, W]`.
    ///   - tile: when given, the image is processed in `tile`×`tile` windows (rounded up to the model's multiple)
    ///     that overlap by `tileOverlap` pixels; overlapping outputs are averaged, as the official Restormer test
    ///     script does, so the result equals untiled inference away from the seams.
    ///   - tileOverlap: the overlap between neighbouring tiles.
    /// - Returns: `[N, 3, H, W]`.
    public static func restore(_ model: any TappedModel, _ input: Tensor, tile: Int? = nil, tileOverlap: Int = 32) -> Tensor {
        precondition(input.rank == 4, "Inference.restore: input must be [N, C, H, W], got \(input.shape)")
        return noGrad {
            guard let tile, tile < max(input.shape[2], input.shape[3]) else { return padded(model, input) }
            return tiled(model, input, tile: tile, overlap: tileOverlap)
        }
    }

    /// One pass on the whole image, padded to the model's multiple.
    static func padded(_ model: any TappedModel, _ input: Tensor) -> Tensor {
        let m = model.sizeMultiple
        let (h, w) = (input.shape[2], input.shape[3])
        let ph = (m - h % m) % m, pw = (m - w % m) % m
        if ph == 0 && pw == 0 { return model(input) }
        let mode: PaddingMode = ph < h && pw < w ? .reflect : .zeros
        let out = model(input.padded2d(left: 0, right: pw, top: 0, bottom: ph, mode: mode))
        return out.cropped2d(top: 0, left: 0, height: h, width: w)
    }

    /// Overlapping tiles, averaged where they overlap.
    static func tiled(_ model: any TappedModel, _ input: Tensor, tile requested: Int, overlap: Int) -> Tensor {
        let m = model.sizeMultiple
        let tile = (requested + m - 1) / m * m
        precondition(overlap >= 0 && overlap < tile, "Inference: tile overlap \(overlap) must be in 0..<\(tile)")
        let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let step = tile - overlap
        func starts(_ extent: Int) -> [Int] {
            guard extent > tile else { return [0] }
            var s = Array(stride(from: 0, to: extent - tile, by: step))
            s.append(extent - tile)
            return s
        }
        let sum = Tensor(zeros: [n, c, h, w])
        let weight = Tensor(zeros: [h, w])
        for y in starts(h) {
            for x in starts(w) {
                let th = min(tile, h), tw = min(tile, w)
                let patch = input.cropped2d(top: y, left: x, height: th, width: tw)
                let out = padded(model, patch)
                for b in 0..<n {
                    for ch in 0..<c {
                        let dst = sum.pointer + ((b * c + ch) * h + y) * w + x
                        let src = out.pointer + (b * c + ch) * th * tw
                        for r in 0..<th {
                            let d = dst + r * w, s = src + r * tw
                            for q in 0..<tw { d[q] += s[q] }
                        }
                    }
                }
                for r in 0..<th {
                    let d = weight.pointer + (y + r) * w + x
                    for q in 0..<tw { d[q] += 1 }
                }
            }
        }
        for b in 0..<(n * c) {
            let p = sum.pointer + b * h * w
            for i in 0..<(h * w) { p[i] /= weight.pointer[i] }
        }
        return sum
    }
}
