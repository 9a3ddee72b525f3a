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
    ///     that overlap by `tileOverlap` pixels. Each tile contributes only its centre: `tileOverlap/2` pixels are
    ///     dropped along every edge that is not the image's, where the tile lacked context. For a model whose
    ///     receptive field radius is at most `tileOverlap/2`, the result equals untiled inference exactly; for
    ///     global-attention models it differs only near the seams. Where trimmed tiles still overlap, outputs are averaged.
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
        let margin = overlap / 2
        for y in starts(h) {
            for x in starts(w) {
                let th = min(tile, h), tw = min(tile, w)
                let out = padded(model, input.cropped2d(top: y, left: x, height: th, width: tw))
                // The kept centre of this tile, in tile coordinates.
                let r0 = y == 0 ? 0 : margin, r1 = y + th == h ? th : th - margin
                let c0 = x == 0 ? 0 : margin, c1 = x + tw == w ? tw : tw - margin
                for plane in 0..<(n * c) {
                    let dst = sum.pointer + (plane * h + y) * w + x, src = out.pointer + plane * th * tw
                    for r in r0..<r1 {
                        let d = dst + r * w, s = src + r * tw
                        for q in c0..<c1 { d[q] += s[q] }
                    }
                }
                for r in r0..<r1 {
                    let d = weight.pointer + (y + r) * w + x
                    for q in c0..<c1 { d[q] += 1 }
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
