import Foundation
import SKDImage
import SKDTensor
import XCTest

final class DegradationTests: XCTestCase {
    private func constant(_ value: UInt8, width: Int, height: Int, channels: Int = 3) -> Image {
        Image(width: width, height: height, channels: channels, bytes: [UInt8](repeating: value, count: width * height * channels))
    }

    private func meanAndStd(_ values: [Float]) -> (Double, Double) {
        let mean = values.reduce(0.0) { $0 + Double($1) } / Double(values.count)
        let variance = values.reduce(0.0) { $0 + pow(Double($1) - mean, 2) } / Double(values.count)
        return (mean, variance.squareRoot())
    }

    func testGaussianNoiseHasTheRequestedSigmaAndIsSeeded() {
        let clean = constant(128, width: 160, height: 120)
        var rng = SKDRandom(seed: 1)
        let noisy = GaussianNoise(sigma: 25).degrade(clean, using: &rng)
        let residual = zip(noisy.floats, clean.floats).map { $0 - $1 }
        let (mean, std) = meanAndStd(residual)
        XCTAssertEqual(mean, 0, accuracy: 0.002)
        XCTAssertEqual(std * 255, 25, accuracy: 0.5, "σ on the 0–255 scale")
        XCTAssertLessThan(noisy.floats.min()!, 0.2, "not clipped by default: tails reach far")

        var again = SKDRandom(seed: 1), other = SKDRandom(seed: 2)
        XCTAssertEqual(GaussianNoise(sigma: 25).degrade(clean, using: &again), noisy)
        XCTAssertNotEqual(GaussianNoise(sigma: 25).degrade(clean, using: &other), noisy)

        var clipRng = SKDRandom(seed: 3)
        let clipped = GaussianNoise(sigma: 50, clip: true).degrade(constant(250, width: 40, height: 40), using: &clipRng)
        XCTAssertLessThanOrEqual(clipped.floats.max()!, 1)
        XCTAssertGreaterThanOrEqual(clipped.floats.min()!, 0)

        // A σ range gives a different σ per image, spanning the range.
        var blindRng = SKDRandom(seed: 4)
        let sigmas = (0..<40).map { _ -> Double in
            let n = GaussianNoise(sigma: 0...50).degrade(clean, using: &blindRng)
            return meanAndStd(zip(n.floats, clean.floats).map { $0 - $1 }).1 * 255
        }
        XCTAssertLessThan(sigmas.min()!, 10)
        XCTAssertGreaterThan(sigmas.max()!, 40)
    }

    /// The orientation (degrees, in (−90, 90], 0 = along +x, positive = towards −row, i.e. counter-clockwise on
    /// screen) and the along-axis standard deviation of the intensity mass of a one-channel float image.
    private func principalAxis(_ image: Image) -> (angle: Double, spread: Double, mass: Double) {
        let f = image.floats
        var m = 0.0, sx = 0.0, sy = 0.0
        for y in 0..<image.height { for x in 0..<image.width { let v = Double(f[y * image.width + x]); m += v; sx += v * Double(x); sy += v * Double(y) } }
        let cx = sx / m, cy = sy / m
        var cxx = 0.0, cyy = 0.0, cxy = 0.0
        for y in 0..<image.height {
            for x in 0..<image.width {
                let v = Double(f[y * image.width + x]), dx = Double(x) - cx, dy = -(Double(y) - cy)
                cxx += v * dx * dx; cyy += v * dy * dy; cxy += v * dx * dy
            }
        }
        cxx /= m; cyy /= m; cxy /= m
        let angle = 0.5 * atan2(2 * cxy, cxx - cyy) * 180 / .pi
        let major = (cxx + cyy) / 2 + (pow((cxx - cyy) / 2, 2) + cxy * cxy).squareRoot()
        return (angle, major.squareRoot(), m)
    }

    /// The dominant orientation of line structures (degrees counter-clockwise from +x, y up): the direction
    /// θ in [0, 180) in which the image correlates best with itself shifted by 10 pixels.
    private func streakOrientation(_ image: Image) -> Double {
        let f = image.floats.map(Double.init), w = image.width, h = image.height
        let mean = f.reduce(0, +) / Double(f.count)
        let z = f.map { $0 - mean }
        func at(_ x: Double, _ y: Double) -> Double {
            let x0 = Int(x.rounded(.down)), y0 = Int(y.rounded(.down)), fx = x - Double(x0), fy = y - Double(y0)
            return (1 - fy) * ((1 - fx) * z[y0 * w + x0] + fx * z[y0 * w + x0 + 1])
                + fy * ((1 - fx) * z[(y0 + 1) * w + x0] + fx * z[(y0 + 1) * w + x0 + 1])
        }
        var best = (angle: 0.0, score: -Double.infinity)
        for step in 0..<360 {
            let theta = Double(step) * 0.5, r = 10.0
            let dx = r * cos(theta * .pi / 180), dy = -r * sin(theta * .pi / 180)  // rows grow downwards
            var score = 0.0
            for y in 12..<(h - 12) { for x in 12..<(w - 12) { score += z[y * w + x] * at(Double(x) + dx, Double(y) + dy) } }
            if score > best.score { best = (theta, score) }
        }
        return best.angle
    }

    func testMotionBlurSmearsAPointIntoALineOfTheDrawnLengthAndAngle() {
        var dot = [UInt8](repeating: 0, count: 61 * 61)
        dot[30 * 61 + 30] = 255
        let image = Image(width: 61, height: 61, channels: 1, bytes: dot)
        for (length, angle) in [(Float(15), Float(30)), (9, 90), (21, 135), (12, 0)] {
            var rng = SKDRandom(seed: 5)
            let blurred = MotionBlur(length: length...length, angle: angle...angle).degrade(image, using: &rng)
            let axis = principalAxis(blurred)
            XCTAssertEqual(axis.mass, 1, accuracy: 1e-5, "the kernel sums to 1")
            let expectedAngle = Double(angle > 90 ? angle - 180 : angle)
            XCTAssertEqual(axis.angle, expectedAngle, accuracy: 2, "length \(length) angle \(angle)")
            // A uniform segment of length L has standard deviation L/√12 along it (+ the bilinear footprint).
            XCTAssertEqual(axis.spread, Double(length) / 12.0.squareRoot(), accuracy: 0.1 * Double(length) / 3.4 + 0.3)
        }
        // A constant image stays constant, also at the mirrored borders.
        var rng = SKDRandom(seed: 6)
        let flat = MotionBlur().degrade(constant(90, width: 33, height: 20), using: &rng)
        for v in flat.floats { XCTAssertEqual(v, 90 / 255, accuracy: 1e-5) }
    }

    func testRainStreaksBrightenAlongTheDrawnAngle() {
        let black = constant(0, width: 200, height: 200, channels: 1)
        for angle in [Float(-20), 0, 25] {
            var rng = SKDRandom(seed: 7)
            let rain = RainStreaks(angle: angle...angle, length: 30...30, density: 0.0005...0.0005, opacity: 0.9...0.9)
                .degrade(black, using: &rng)
            // Streaks lean right by `angle` going down: direction (sin a, −cos a) with y pointing up, an
            // orientation of a − 90° (mod 180°) counter-clockwise from +x.
            let measured = streakOrientation(rain)
            let difference = abs(measured - (Double(angle) - 90)).truncatingRemainder(dividingBy: 180)
            XCTAssertLessThan(min(difference, 180 - difference), 4, "angle \(angle): measured \(measured)")
        }
        // Screen blending only brightens; density controls coverage; the same generator state repeats.
        let clean = gradientImage(width: 90, height: 70)
        var a = SKDRandom(seed: 8), b = SKDRandom(seed: 8)
        let sparse = RainStreaks(density: 0.001...0.001).degrade(clean, using: &a)
        XCTAssertEqual(RainStreaks(density: 0.001...0.001).degrade(clean, using: &b), sparse)
        var c = SKDRandom(seed: 8)
        let dense = RainStreaks(density: 0.02...0.02).degrade(clean, using: &c)
        for (r, s) in zip(dense.floats, clean.floats) { XCTAssertGreaterThanOrEqual(r, s - 1e-6) }
        let changed = { (x: Image) in zip(x.floats, clean.floats).filter { $0 - $1 > 0.01 }.count }
        XCTAssertGreaterThan(changed(sparse), 0)
        XCTAssertGreaterThan(changed(dense), 3 * changed(sparse))
    }

    func testChainAppliesInOrderAndAddsMargins() {
        let blur = MotionBlur(length: 7...7, angle: 45...45), noise = GaussianNoise(sigma: 10)
        let chain = DegradationChain([blur, noise])
        XCTAssertEqual(chain.margin, blur.margin + noise.margin)
        let clean = gradientImage(width: 30, height: 20)
        var r1 = SKDRandom(seed: 9), r2 = SKDRandom(seed: 9)
        let step = noise.degrade(blur.degrade(clean, using: &r2), using: &r2)
        XCTAssertEqual(chain.degrade(clean, using: &r1), step)
    }
}
