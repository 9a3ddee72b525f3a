// Image: a decoded picture in memory, interleaved (HWC) as the codecs produce it.
//
// Samples are either 8-bit (what PNG/JPEG files usually hold and what the metrics are defined on) or float on
// the 0...1 scale (16-bit PNGs, degraded inputs that must not be quantised, network outputs). Conversion to
// the NCHW tensors the networks use is in Image+Tensor.swift.

import Foundation

/// A decoded image: `height` rows of `width` pixels of `channels` interleaved samples (1 = gray, 3 = RGB).
public struct Image: Equatable, Sendable {
    /// The sample storage.
    public enum Pixels: Equatable, Sendable {
        /// 8-bit samples, 0...255.
        case uint8([UInt8])
        /// Float samples on the 0...1 scale. Values outside it are allowed (an unclipped noisy image) and are
        /// clamped only when quantising.
        case float([Float])
    }

    /// Pixels per row.
    public let width: Int
    /// Rows.
    public let height: Int
    /// Samples per pixel: 1 (gray) or 3 (RGB).
    public let channels: Int
    /// The samples, row-major, channels interleaved: sample `(y, x, c)` is at `(y * width + x) * channels + c`.
    public let pixels: Pixels

    /// An 8-bit image from interleaved samples.
    public init(width: Int, height: Int, channels: Int, bytes: [UInt8]) {
        Image.checkGeometry(width, height, channels, bytes.count)
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = .uint8(bytes)
    }

    /// A float image (0...1 scale) from interleaved samples.
    public init(width: Int, height: Int, channels: Int, floats: [Float]) {
        Image.checkGeometry(width, height, channels, floats.count)
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = .float(floats)
    }

    private static func checkGeometry(_ width: Int, _ height: Int, _ channels: Int, _ count: Int) {
        precondition(width > 0 && height > 0, "Image: size \(width)x\(height) must be positive")
        precondition(channels == 1 || channels == 3, "Image: \(channels) channels; only 1 (gray) and 3 (RGB) are supported")
        precondition(count == width * height * channels,
                     "Image: \(count) samples for \(width)x\(height)x\(channels) (\(width * height * channels) expected)")
    }

    /// Whether the samples are 8-bit.
    public var isUInt8: Bool { if case .uint8 = pixels { return true } else { return false } }

    /// The number of samples (`width * height * channels`).
    public var sampleCount: Int { width * height * channels }

    /// 8-bit samples; float samples are scaled by 255, rounded half to even and clamped, as the evaluation
    /// scripts do before computing metrics.
    public var bytes: [UInt8] {
        switch pixels {
        case .uint8(let b): return b
        case .float(let f):
            return [UInt8](unsafeUninitializedCapacity: f.count) { buffer, initialized in
                for i in 0..<f.count { buffer[i] = Image.quantize(f[i]) }
                initialized = f.count
            }
        }
    }

    /// Float samples on the 0...1 scale (8-bit samples divided by 255).
    public var floats: [Float] {
        switch pixels {
        case .float(let f): return f
        case .uint8(let b):
            return [Float](unsafeUninitializedCapacity: b.count) { buffer, initialized in
                for i in 0..<b.count { buffer[i] = Float(b[i]) * (1 / 255) }
                initialized = b.count
            }
        }
    }

    /// The sample at row `y`, column `x`, channel `c`, on the 0...1 scale.
    public func sample(x: Int, y: Int, channel c: Int) -> Float {
        precondition(x >= 0 && x < width && y >= 0 && y < height && c >= 0 && c < channels,
                     "Image.sample: (\(x), \(y), \(c)) outside \(width)x\(height)x\(channels)")
        let i = (y * width + x) * channels + c
        switch pixels {
        case .uint8(let b): return Float(b[i]) * (1 / 255)
        case .float(let f): return f[i]
        }
    }

    /// `value` (0...1 scale) as an 8-bit sample: scaled by 255, clamped, rounded half to even (NumPy's `rint`,
    /// used by `img_as_ubyte` and `.round()` in the official test scripts).
    @inlinable
    public static func quantize(_ value: Float) -> UInt8 {
        let scaled = value * 255
        if !(scaled > 0) { return 0 }  // also maps NaN to 0
        if scaled >= 255 { return 255 }
        return UInt8(scaled.rounded(.toNearestOrEven))
    }

    /// The image with 8-bit samples (a no-op for 8-bit images).
    public func quantized() -> Image {
        isUInt8 ? self : Image(width: width, height: height, channels: channels, bytes: bytes)
    }

    /// The image with three channels: gray is repeated into R, G and B; RGB images are returned unchanged.
    public func rgb() -> Image {
        guard channels == 1 else { return self }
        switch pixels {
        case .uint8(let b):
            var out = [UInt8](repeating: 0, count: b.count * 3)
            for i in 0..<b.count { out[3 * i] = b[i]; out[3 * i + 1] = b[i]; out[3 * i + 2] = b[i] }
            return Image(width: width, height: height, channels: 3, bytes: out)
        case .float(let f):
            var out = [Float](repeating: 0, count: f.count * 3)
            for i in 0..<f.count { out[3 * i] = f[i]; out[3 * i + 1] = f[i]; out[3 * i + 2] = f[i] }
            return Image(width: width, height: height, channels: 3, floats: out)
        }
    }

    /// The `width`x`height` region whose top-left pixel is (`x`, `y`); it must lie inside the image.
    public func cropped(x: Int, y: Int, width w: Int, height h: Int) -> Image {
        precondition(x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= width && y + h <= height,
                     "Image.cropped: region x=\(x) y=\(y) \(w)x\(h) is not inside \(width)x\(height)")
        let rowLength = w * channels
        func cut<T>(_ source: [T]) -> [T] {
            var out = [T]()
            out.reserveCapacity(rowLength * h)
            for row in y..<(y + h) {
                let start = (row * width + x) * channels
                out.append(contentsOf: source[start..<(start + rowLength)])
            }
            return out
        }
        switch pixels {
        case .uint8(let b): return Image(width: w, height: h, channels: channels, bytes: cut(b))
        case .float(let f): return Image(width: w, height: h, channels: channels, floats: cut(f))
        }
    }

    /// The image without `border` pixels on every side (the "crop border" option of the evaluation scripts).
    public func croppingBorder(_ border: Int) -> Image {
        precondition(border >= 0 && 2 * border < width && 2 * border < height,
                     "Image.croppingBorder: border \(border) leaves nothing of \(width)x\(height)")
        return border == 0 ? self : cropped(x: border, y: border, width: width - 2 * border, height: height - 2 * border)
    }
}
