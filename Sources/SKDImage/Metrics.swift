// PSNR and SSIM exactly as the standard evaluation scripts compute them.
//
// Definitions (checked against scikit-image 0.26 to 1e-4, see Tests/SKDImageTests/MetricsTests.swift):
// - Inputs are 8-bit images (float images are quantised first, as the scripts save/round outputs to uint8).
// - PSNR = 10 log10(255² / MSE) over all samples.
// - SSIM (Wang et al. 2004): 11×11 Gaussian window with σ = 1.5 (scipy's truncation at 3.5σ gives radius 5),
//   K1 = 0.01, K2 = 0.03, L = 255, population (co)variances, the SSIM map only where the window fits inside
//   the image ("valid"), averaged over positions, then over channels.
// - The Y variants use MATLAB's rgb2ycbcr luma Y = 16 + 65.481 R + 128.553 G + 24.966 B with R, G, B in [0, 1],
//   not rounded, as the deraining scripts do; L stays 255.
// Statistics are accumulated in Double: E[x²] − E[x]² on 0...255 values loses ~4 digits in Float.

import Foundation
import SKDTensor

/// Which signal a metric is computed on.
public enum MetricSpace: String, Equatable, Sendable, Codable {
    /// All channels of the 8-bit image (RGB, or gray for gray images).
    case rgb
    /// MATLAB luma of the RGB image (gray images are expanded to RGB first).
    case y
}

/// PSNR and SSIM as the restoration literature's evaluation scripts define them.
public enum Metrics {
    /// The SSIM Gaussian window radius: scipy truncates at `int(3.5 σ + 0.5)` = 5 for σ = 1.5, an 11×11 window.
    public static let ssimRadius = 5
    /// The SSIM Gaussian window's standard deviation.
    public static let ssimSigma = 1.5

    /// Peak signal-to-noise ratio in dB (L = 255) between two images of equal size and channel count.
    ///
    /// - Parameters:
    ///   - space: `.rgb` (every sample) or `.y` (MATLAB luma).
    ///   - border: pixels removed from every side before measuring.
    /// - Returns: `+infinity` for identical images.
    public static func psnr(_ restored: Image, _ reference: Image, space: MetricSpace = .rgb, border: Int = 0) -> Double {
        let (a, b) = planes(restored, reference, space: space, border: border, caller: "psnr")
        var squared = 0.0
        var count = 0
        for (x, y) in zip(a.planes, b.planes) {
            for i in 0..<x.count { let d = x[i] - y[i]; squared += d * d }
            count += x.count
        }
        let mse = squared / Double(count)
        return mse == 0 ? .infinity : 10 * log10(255 * 255 / mse)
    }

    /// Structural similarity (Wang et al. 2004) between two images of equal size and channel count: the mean
    /// of the valid SSIM map per channel, averaged over channels.
    ///
    /// - Parameters:
    ///   - space: `.rgb` (per channel, then the channel mean) or `.y` (MATLAB luma).
    ///   - border: pixels removed from every side before measuring.
    /// - Precondition: after the border crop both sides are at least 11 pixels.
    public static func ssim(_ restored: Image, _ reference: Image, space: MetricSpace = .rgb, border: Int = 0) -> Double {
        let (a, b) = planes(restored, reference, space: space, border: border, caller: "ssim")
        precondition(a.width > 2 * ssimRadius && a.height > 2 * ssimRadius,
                     "Metrics.ssim: \(a.width)x\(a.height) is smaller than the 11x11 window")
        var total = 0.0
        for (x, y) in zip(a.planes, b.planes) {
            total += ssimPlane(x, y, width: a.width, height: a.height)
        }
        return total / Double(a.planes.count)
    }

    /// The 8-bit samples `restored` and `reference` of tensors, quantised like the scripts save outputs, compared
    /// by PSNR. Tensors are `[N, C, H, W]` (item `index` used) or `[C, H, W]`, float32, in `range`.
    public static func psnr(_ restored: Tensor, _ reference: Tensor, range: PixelRange, index: Int = 0,
                            space: MetricSpace = .rgb, border: Int = 0) -> Double {
        psnr(Image(tensor: restored, index: index, range: range), Image(tensor: reference, index: index, range: range),
             space: space, border: border)
    }

    /// SSIM of two tensors after quantisation to 8 bits; shapes and `range` as in `psnr(_:_:range:index:space:border:)`.
    public static func ssim(_ restored: Tensor, _ reference: Tensor, range: PixelRange, index: Int = 0,
                            space: MetricSpace = .rgb, border: Int = 0) -> Double {
        ssim(Image(tensor: restored, index: index, range: range), Image(tensor: reference, index: index, range: range),
             space: space, border: border)
    }

    /// MATLAB luma Y = 16 + 65.481 R + 128.553 G + 24.966 B of the (quantised) image, R, G, B in [0, 1], unrounded,
    /// row-major `height * width` values.
    public static func luma(_ image: Image) -> [Double] {
        let rgb = image.rgb().bytes
        let count = image.width * image.height
        return [Double](unsafeUninitializedCapacity: count) { buffer, initialized in
            for i in 0..<count {
                let r = Double(rgb[3 * i]) / 255, g = Double(rgb[3 * i + 1]) / 255, b = Double(rgb[3 * i + 2]) / 255
                buffer[i] = 16 + 65.481 * r + 128.553 * g + 24.966 * b
            }
            initialized = count
        }
    }

    // MARK: - Internals

    private struct Planes {
        var planes: [[Double]]
        var width: Int
        var height: Int
    }

    /// The measured planes of both images after the space conversion and border crop.
    private static func planes(_ restored: Image, _ reference: Image, space: MetricSpace, border: Int,
                               caller: String) -> (Planes, Planes) {
        precondition(restored.width == reference.width && restored.height == reference.height
                        && restored.channels == reference.channels,
                     "Metrics.\(caller): restored \(restored.width)x\(restored.height)x\(restored.channels) vs reference \(reference.width)x\(reference.height)x\(reference.channels)")
        precondition(border >= 0 && 2 * border < restored.width && 2 * border < restored.height,
                     "Metrics.\(caller): border \(border) leaves nothing of \(restored.width)x\(restored.height)")
        return (extract(restored, space: space, border: border), extract(reference, space: space, border: border))
    }

    private static func extract(_ image: Image, space: MetricSpace, border: Int) -> Planes {
        let w = image.width - 2 * border, h = image.height - 2 * border
        func cut(_ full: (Int) -> Double) -> [Double] {
            [Double](unsafeUninitializedCapacity: w * h) { buffer, initialized in
                for y in 0..<h {
                    for x in 0..<w { buffer[y * w + x] = full((y + border) * image.width + x + border) }
                }
                initialized = w * h
            }
        }
        switch space {
        case .y:
            let luma = luma(image)
            return Planes(planes: [cut { luma[$0] }], width: w, height: h)
        case .rgb:
            let bytes = image.bytes, c = image.channels
            let planes = (0..<c).map { ch in cut { Double(bytes[$0 * c + ch]) } }
            return Planes(planes: planes, width: w, height: h)
        }
    }

    /// The normalised 1-D Gaussian of scipy.ndimage for σ = 1.5 and radius 5.
    static let gaussianWeights: [Double] = {
        let sigma2 = ssimSigma * ssimSigma
        let raw = (-ssimRadius...ssimRadius).map { exp(-0.5 / sigma2 * Double($0 * $0)) }
        let sum = raw.reduce(0, +)
        return raw.map { $0 / sum }
    }()

    /// The mean SSIM map of one channel over the positions where the window fits.
    ///
    /// Separable filtering: a horizontal pass over every input row for the five moments (x, y, x², y², xy) at the
    /// valid columns, then a vertical pass producing valid rows, both with contiguous inner loops.
    private static func ssimPlane(_ xPlane: [Double], _ yPlane: [Double], width: Int, height: Int) -> Double {
        let r = ssimRadius, taps = 2 * r + 1
        let vw = width - 2 * r, vh = height - 2 * r
        let c1 = (0.01 * 255) * (0.01 * 255), c2 = (0.03 * 255) * (0.03 * 255)
        let moments = 5
        // Horizontal pass: moment m of input row y at valid column j is at h[(m * height + y) * vw + j].
        let h = UnsafeMutablePointer<Double>.allocate(capacity: moments * height * vw)
        defer { h.deallocate() }
        let rowSums = UnsafeMutablePointer<Double>.allocate(capacity: vh)
        defer { rowSums.deallocate() }
        let weights = gaussianWeights
        xPlane.withUnsafeBufferPointer { xb in
            yPlane.withUnsafeBufferPointer { yb in
                weights.withUnsafeBufferPointer { wb in
                    let X = xb.baseAddress!, Y = yb.baseAddress!, wt = wb.baseAddress!
                    Parallel.forEach(height, cost: width * taps * moments) { rows in
                        for y in rows {
                            let xr = X + y * width, yr = Y + y * width
                            let hx = h + (0 * height + y) * vw, hy = h + (1 * height + y) * vw
                            let hxx = h + (2 * height + y) * vw, hyy = h + (3 * height + y) * vw
                            let hxy = h + (4 * height + y) * vw
                            for j in 0..<vw { hx[j] = 0; hy[j] = 0; hxx[j] = 0; hyy[j] = 0; hxy[j] = 0 }
                            for k in 0..<taps {
                                let g = wt[k], xs = xr + k, ys = yr + k
                                for j in 0..<vw {
                                    let a = xs[j], b = ys[j]
                                    hx[j] += g * a
                                    hy[j] += g * b
                                    hxx[j] += g * (a * a)
                                    hyy[j] += g * (b * b)
                                    hxy[j] += g * (a * b)
                                }
                            }
                        }
                    }
                    // Vertical pass and the SSIM map, one valid row at a time.
                    Parallel.forEach(vh, cost: vw * taps * moments) { rows in
                        let acc = UnsafeMutablePointer<Double>.allocate(capacity: moments * vw)
                        defer { acc.deallocate() }
                        for i in rows {
                            acc.update(repeating: 0, count: moments * vw)
                            for k in 0..<taps {
                                let g = wt[k]
                                for m in 0..<moments {
                                    let src = h + (m * height + i + k) * vw, dst = acc + m * vw
                                    for j in 0..<vw { dst[j] += g * src[j] }
                                }
                            }
                            var sum = 0.0
                            for j in 0..<vw {
                                let ux = acc[j], uy = acc[vw + j]
                                let vx = acc[2 * vw + j] - ux * ux
                                let vy = acc[3 * vw + j] - uy * uy
                                let vxy = acc[4 * vw + j] - ux * uy
                                let numerator = (2 * ux * uy + c1) * (2 * vxy + c2)
                                let denominator = (ux * ux + uy * uy + c1) * (vx + vy + c2)
                                sum += numerator / denominator
                            }
                            rowSums[i] = sum
                        }
                    }
                }
            }
        }
        var total = 0.0
        for i in 0..<vh { total += rowSums[i] }
        return total / Double(vw * vh)
    }
}
