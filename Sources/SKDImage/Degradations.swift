// Synthetic degradations applied on the fly to clean images: Gaussian noise, rain streaks, motion blur.
//
// Every random choice comes from the `SKDRandom` passed in, so a degradation is reproduced exactly from the
// generator's state (datasets derive that state from a seed and the sample index).

import Foundation
import SKDTensor

/// A synthetic degradation of a clean image.
public protocol Degradation: Sendable {
    /// Pixels of context needed on every side of a patch: degrading a patch grown by `margin` and cutting the
    /// centre equals (away from the image border) cutting the degraded image. 0 for per-pixel degradations.
    var margin: Int { get }

    /// The degraded image: float samples on the 0...1 scale (not quantised), same size and channels as `image`.
    func degrade(_ image: Image, using rng: inout SKDRandom) -> Image
}

// MARK: - Gaussian noise

/// Additive white Gaussian noise with standard deviation σ on the 0–255 scale (the colour-denoising benchmark:
/// `noisy = clean + N(0, σ/255)`, independently per sample, not clipped unless asked).
public struct GaussianNoise: Degradation, Equatable {
    /// The range σ is drawn from, uniformly, per image (a single value gives the fixed-σ benchmark).
    public var sigma: ClosedRange<Float>
    /// Whether to clamp the noisy image to 0...1; the benchmark feeds the unclipped image to the network.
    public var clip: Bool

    /// Noise with σ drawn uniformly from `sigma` (0–255 scale) for every image.
    public init(sigma: ClosedRange<Float>, clip: Bool = false) {
        precondition(sigma.lowerBound >= 0, "GaussianNoise: σ range \(sigma) must be non-negative")
        self.sigma = sigma
        self.clip = clip
    }

    /// Noise with a fixed σ (0–255 scale), e.g. 15, 25 or 50.
    public init(sigma: Float, clip: Bool = false) { self.init(sigma: sigma...sigma, clip: clip) }

    /// 0: the noise is per sample.
    public var margin: Int { 0 }

    /// The degraded image (float samples, 0...1 scale); see the type's description.
    public func degrade(_ image: Image, using rng: inout SKDRandom) -> Image {
        let s = (sigma.lowerBound == sigma.upperBound ? sigma.lowerBound
                    : sigma.lowerBound + (sigma.upperBound - sigma.lowerBound) * rng.uniform()) / 255
        var out = image.floats
        for i in 0..<out.count {
            let v = out[i] + s * rng.normal()
            out[i] = clip ? min(max(v, 0), 1) : v
        }
        return Image(width: image.width, height: image.height, channels: image.channels, floats: out)
    }
}

// MARK: - Line kernels

/// A normalised anti-aliased line segment, as a list of taps (offsets from the centre and weights).
struct LineKernel {
    var dx: [Int]
    var dy: [Int]
    var weight: [Float]
    /// The largest |offset|.
    var radius: Int

    /// A segment of `length` pixels through the centre at `angle` radians (0 = horizontal, counter-clockwise,
    /// image rows growing downwards), sampled densely and splatted bilinearly; weights sum to 1.
    init(length: Float, angle: Float) {
        let half = max(length, 1) / 2
        let radius = Int(half.rounded(.up)) + 1
        let size = 2 * radius + 1
        var grid = [Float](repeating: 0, count: size * size)
        let samples = max(Int(length * 4), 1)
        let cx = cos(angle), cy = -sin(angle)
        for s in 0...samples {
            let t = -half + 2 * half * Float(s) / Float(samples)
            let px = Float(radius) + t * cx, py = Float(radius) + t * cy
            let x0 = Int(px.rounded(.down)), y0 = Int(py.rounded(.down))
            let fx = px - Float(x0), fy = py - Float(y0)
            for (oy, wy) in [(0, 1 - fy), (1, fy)] {
                for (ox, wx) in [(0, 1 - fx), (1, fx)] {
                    let x = x0 + ox, y = y0 + oy
                    if x >= 0 && x < size && y >= 0 && y < size { grid[y * size + x] += wx * wy }
                }
            }
        }
        let total = grid.reduce(0, +)
        var dx = [Int](), dy = [Int](), weight = [Float]()
        var reach = 0
        for y in 0..<size {
            for x in 0..<size where grid[y * size + x] > 1e-6 * total {
                dx.append(x - radius)
                dy.append(y - radius)
                weight.append(grid[y * size + x] / total)
                reach = max(reach, abs(x - radius), abs(y - radius))
            }
        }
        self.dx = dx
        self.dy = dy
        self.weight = weight
        self.radius = reach
    }
}

/// Mirror index into 0..<n without repeating the edge sample (…2 1 | 0 1 2 … n−1 | n−2 …), like
/// OpenCV's BORDER_REFLECT_101; used for the blur's image border.
@inline(__always)
func reflect(_ i: Int, _ n: Int) -> Int {
    if n == 1 { return 0 }
    var i = i
    let period = 2 * (n - 1)
    i %= period
    if i < 0 { i += period }
    return i < n ? i : period - i
}

// MARK: - Motion blur

/// Linear motion blur: the image convolved with a random anti-aliased line kernel (length and direction drawn
/// per image), mirrored at the image border.
public struct MotionBlur: Degradation, Equatable {
    /// The range of blur lengths in pixels.
    public var length: ClosedRange<Float>
    /// The range of directions in degrees (0 = horizontal; the kernel is symmetric, so 0...180 covers all).
    public var angle: ClosedRange<Float>

    /// Blur with length drawn from `length` (pixels) and direction from `angle` (degrees).
    public init(length: ClosedRange<Float> = 5...21, angle: ClosedRange<Float> = 0...180) {
        precondition(length.lowerBound >= 1, "MotionBlur: length range \(length) must start at 1 or more")
        self.length = length
        self.angle = angle
    }

    /// Half the longest kernel, plus one pixel for the anti-aliased footprint.
    public var margin: Int { Int((length.upperBound / 2).rounded(.up)) + 1 }

    /// The kernel taps the next `degrade` call with this generator state would use (for inspection and tests).
    func kernel(using rng: inout SKDRandom) -> LineKernel {
        let l = length.lowerBound + (length.upperBound - length.lowerBound) * rng.uniform()
        let a = angle.lowerBound + (angle.upperBound - angle.lowerBound) * rng.uniform()
        return LineKernel(length: l, angle: a * .pi / 180)
    }

    /// The degraded image (float samples, 0...1 scale); see the type's description.
    public func degrade(_ image: Image, using rng: inout SKDRandom) -> Image {
        let k = kernel(using: &rng)
        return Image(width: image.width, height: image.height, channels: image.channels,
                     floats: convolve(image.floats, width: image.width, height: image.height,
                                      channels: image.channels, kernel: k))
    }
}

/// `source` (interleaved HWC floats) convolved with `kernel`, mirrored at the borders. Each output row adds one
/// shifted source row per tap; inside the columns where no mirroring is needed the loop is contiguous.
func convolve(_ source: [Float], width: Int, height: Int, channels: Int, kernel: LineKernel) -> [Float] {
    var out = [Float](repeating: 0, count: source.count)
    let c = channels, rowLength = width * c
    let r = kernel.radius
    let innerStart = min(r, width), innerEnd = max(width - r, innerStart)
    source.withUnsafeBufferPointer { s in
        out.withUnsafeMutableBufferPointer { o in
            for y in 0..<height {
                let orow = o.baseAddress! + y * rowLength
                for t in 0..<kernel.weight.count {
                    let w = kernel.weight[t], dx = kernel.dx[t]
                    let srow = s.baseAddress! + reflect(y + kernel.dy[t], height) * rowLength
                    // Interior columns: the source column is x + dx for all of them.
                    let shifted = srow + dx * c
                    for i in (innerStart * c)..<(innerEnd * c) { orow[i] += w * shifted[i] }
                    // Border columns: mirrored source column.
                    for x in 0..<innerStart {
                        let sx = reflect(x + dx, width)
                        for ch in 0..<c { orow[x * c + ch] += w * srow[sx * c + ch] }
                    }
                    for x in innerEnd..<width {
                        let sx = reflect(x + dx, width)
                        for ch in 0..<c { orow[x * c + ch] += w * srow[sx * c + ch] }
                    }
                }
            }
        }
    }
    return out
}

// MARK: - Rain streaks

/// Synthetic rain: sparse random drops smeared into streaks along one random direction and screen-blended
/// over the image (`rainy = 1 − (1 − clean)(1 − opacity · streak)`, per channel, so streaks are whitish).
///
/// Per image the generator draws the streak angle (degrees from vertical), length (pixels), drop density
/// (probability that a pixel seeds a drop) and opacity; each drop gets its own brightness in 0.5...1.
public struct RainStreaks: Degradation, Equatable {
    /// Streak direction in degrees from vertical (positive leans right going down).
    public var angle: ClosedRange<Float>
    /// Streak length in pixels.
    public var length: ClosedRange<Float>
    /// Fraction of pixels that seed a drop.
    public var density: ClosedRange<Float>
    /// Blend strength of the streak layer, 0...1.
    public var opacity: ClosedRange<Float>

    /// Rain with each parameter drawn uniformly from its range per image.
    public init(angle: ClosedRange<Float> = -30...30, length: ClosedRange<Float> = 10...40,
                density: ClosedRange<Float> = 0.002...0.02, opacity: ClosedRange<Float> = 0.6...0.95) {
        precondition(length.lowerBound >= 1, "RainStreaks: length range \(length) must start at 1 or more")
        precondition(density.lowerBound >= 0 && density.upperBound <= 1, "RainStreaks: density \(density) outside 0...1")
        precondition(opacity.lowerBound >= 0 && opacity.upperBound <= 1, "RainStreaks: opacity \(opacity) outside 0...1")
        self.angle = angle
        self.length = length
        self.density = density
        self.opacity = opacity
    }

    /// Half the longest kernel, plus one pixel for the anti-aliased footprint.
    public var margin: Int { Int((length.upperBound / 2).rounded(.up)) + 1 }

    /// The streak layer (`height * width` values in 0...1) for one image.
    func streaks(width: Int, height: Int, using rng: inout SKDRandom) -> (layer: [Float], opacity: Float) {
        func draw(_ r: ClosedRange<Float>, _ rng: inout SKDRandom) -> Float {
            r.lowerBound + (r.upperBound - r.lowerBound) * rng.uniform()
        }
        let a = draw(angle, &rng), l = draw(length, &rng), d = draw(density, &rng), o = draw(opacity, &rng)
        // A streak leaning right by `a` going down runs along ±(sin a, cos a) in (column, row); in the kernel's
        // convention, direction (cos θ, −sin θ), that is θ = 90° + a.
        let kernel = LineKernel(length: l, angle: (90 + a) * .pi / 180)
        // The kernel is normalised to sum 1; scaling by its length makes a lone drop's streak about as bright
        // as the drop itself.
        let gain = Float(max(l, 1))
        var layer = [Float](repeating: 0, count: width * height)
        for y in 0..<height {
            for x in 0..<width where rng.uniform() < d {
                let brightness = 0.5 + 0.5 * rng.uniform()
                for t in 0..<kernel.weight.count {
                    let sx = x + kernel.dx[t], sy = y + kernel.dy[t]
                    if sx >= 0 && sx < width && sy >= 0 && sy < height {
                        layer[sy * width + sx] += gain * brightness * kernel.weight[t]
                    }
                }
            }
        }
        for i in 0..<layer.count { layer[i] = min(layer[i], 1) }
        return (layer, o)
    }

    /// The degraded image (float samples, 0...1 scale); see the type's description.
    public func degrade(_ image: Image, using rng: inout SKDRandom) -> Image {
        let (layer, o) = streaks(width: image.width, height: image.height, using: &rng)
        var out = image.floats
        let c = image.channels
        for p in 0..<layer.count {
            let s = o * layer[p]
            if s == 0 { continue }
            for ch in 0..<c {
                let v = min(max(out[p * c + ch], 0), 1)
                out[p * c + ch] = 1 - (1 - v) * (1 - s)
            }
        }
        return Image(width: image.width, height: image.height, channels: c, floats: out)
    }
}

// MARK: - Composition

/// Several degradations applied in order (e.g. motion blur, then noise); margins add up.
public struct DegradationChain: Degradation {
    /// The degradations, first applied first.
    public var steps: [any Degradation]

    /// A chain applying `steps` in order.
    public init(_ steps: [any Degradation]) { self.steps = steps }

    /// The sum of the steps' margins.
    public var margin: Int { steps.reduce(0) { $0 + $1.margin } }

    /// The degraded image (float samples, 0...1 scale); see the type's description.
    public func degrade(_ image: Image, using rng: inout SKDRandom) -> Image {
        steps.reduce(image) { $1.degrade($0, using: &rng) }
    }
}
