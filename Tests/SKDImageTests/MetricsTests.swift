import Foundation
import SKDImage
import SKDTensor
import XCTest

final class MetricsTests: XCTestCase {
    /// ../shared/golden/metrics.json: scikit-image 0.26 PSNR/SSIM on RGB and MATLAB luma.
    func testAgreesWithScikitImageGolden() throws {
        let json = try referenceFile("golden/metrics.json")
        let folder = json.deletingLastPathComponent()
        let root = try JSONSerialization.jsonObject(with: Data(contentsOf: json)) as! [String: Any]
        let pairs = root["pairs"] as! [[String: Any]]
        XCTAssertFalse(pairs.isEmpty)
        var worstPSNR = 0.0, worstSSIM = 0.0
        for pair in pairs {
            let restored = try Image(contentsOf: folder.appendingPathComponent(pair["restored"] as! String))
            let reference = try Image(contentsOf: folder.appendingPathComponent(pair["reference"] as! String))
            let measured: [(String, Double, Bool)] = [
                ("psnr_rgb", Metrics.psnr(restored, reference, space: .rgb), true),
                ("ssim_rgb", Metrics.ssim(restored, reference, space: .rgb), false),
                ("psnr_y", Metrics.psnr(restored, reference, space: .y), true),
                ("ssim_y", Metrics.ssim(restored, reference, space: .y), false),
            ]
            for (key, value, isPSNR) in measured {
                let expected = pair[key] as! Double
                let difference = abs(value - expected)
                XCTAssertLessThanOrEqual(difference, isPSNR ? 1e-3 : 1e-4, "\(pair["restored"]!) \(key): \(value) vs \(expected)")
                if isPSNR { worstPSNR = max(worstPSNR, difference) } else { worstSSIM = max(worstSSIM, difference) }
            }
        }
        print(String(format: "metrics.json agreement: max |ΔPSNR| = %.3e dB, max |ΔSSIM| = %.3e over %d pairs",
                     worstPSNR, worstSSIM, pairs.count))
    }

    /// The separable valid-region SSIM against a direct 11×11 window sum at every valid position.
    func testSSIMMatchesDirectWindowSum() {
        for (w, h, c) in [(11, 11, 1), (23, 17, 3), (40, 12, 1)] {
            let a = noiseImage(width: w, height: h, channels: c, seed: UInt64(w))
            // A related image, so SSIM is far from 0.
            let b = Image(width: w, height: h, channels: c,
                          bytes: a.bytes.enumerated().map { UInt8(clamping: Int($1) / 2 + 60 + ($0 % 7) * 5) })
            XCTAssertEqual(Metrics.ssim(a, b), directSSIM(a, b), accuracy: 1e-12, "\(w)x\(h)x\(c)")
        }
    }

    func testIdentityBorderAndLuma() {
        let a = noiseImage(width: 30, height: 25, seed: 1), b = noiseImage(width: 30, height: 25, seed: 2)
        XCTAssertEqual(Metrics.psnr(a, a), .infinity)
        XCTAssertEqual(Metrics.ssim(a, a), 1, accuracy: 1e-12)
        XCTAssertEqual(Metrics.ssim(a, a, space: .y), 1, accuracy: 1e-12)
        // Border crop equals measuring the cropped images.
        XCTAssertEqual(Metrics.psnr(a, b, border: 4), Metrics.psnr(a.croppingBorder(4), b.croppingBorder(4)))
        XCTAssertEqual(Metrics.ssim(a, b, space: .y, border: 3),
                       Metrics.ssim(a.croppingBorder(3), b.croppingBorder(3), space: .y))
        // PSNR by hand: one sample off by 10 in a 2×1 gray image: MSE = 50.
        let x = Image(width: 2, height: 1, channels: 1, bytes: [0, 0]), y = Image(width: 2, height: 1, channels: 1, bytes: [10, 0])
        XCTAssertEqual(Metrics.psnr(x, y), 10 * log10(255.0 * 255 / 50), accuracy: 1e-12)
        // MATLAB luma: white is 235, black 16, pure red 16 + 65.481.
        let rgb = Image(width: 3, height: 1, channels: 3, bytes: [255, 255, 255, 0, 0, 0, 255, 0, 0])
        let luma = Metrics.luma(rgb)
        XCTAssertEqual(luma[0], 235, accuracy: 1e-9)
        XCTAssertEqual(luma[1], 16, accuracy: 1e-12)
        XCTAssertEqual(luma[2], 81.481, accuracy: 1e-12)
        // The tensor forms quantise first.
        let ta = a.tensor(range: .minusOneToOne), tb = b.tensor(range: .minusOneToOne)
        XCTAssertEqual(Metrics.psnr(ta, tb, range: .minusOneToOne), Metrics.psnr(a, b), accuracy: 1e-12)
        XCTAssertEqual(Metrics.ssim(ta, tb, range: .minusOneToOne, space: .y), Metrics.ssim(a, b, space: .y), accuracy: 1e-12)
    }

    /// SSIM written the slow, obvious way: at every position where the 11×11 window fits, the window's weighted
    /// moments, then the Wang et al. formula; mean over positions and channels.
    private func directSSIM(_ a: Image, _ b: Image) -> Double {
        var weights = [Double]()
        for dy in -5...5 { for dx in -5...5 { weights.append(exp(-Double(dx * dx + dy * dy) / (2 * 1.5 * 1.5))) } }
        let total = weights.reduce(0, +)
        weights = weights.map { $0 / total }
        let c1: Double = (0.01 * 255) * (0.01 * 255), c2: Double = (0.03 * 255) * (0.03 * 255)
        let x = a.bytes.map(Double.init), y = b.bytes.map(Double.init)
        var sum = 0.0
        for ch in 0..<a.channels {
            var channelSum = 0.0
            for cy in 5..<(a.height - 5) {
                for cx in 5..<(a.width - 5) {
                    var mx = 0.0, my = 0.0, mxx = 0.0, myy = 0.0, mxy = 0.0
                    for dy in -5...5 {
                        for dx in -5...5 {
                            let g = weights[(dy + 5) * 11 + dx + 5]
                            let i = ((cy + dy) * a.width + cx + dx) * a.channels + ch
                            mx += g * x[i]; my += g * y[i]
                            mxx += g * x[i] * x[i]; myy += g * y[i] * y[i]; mxy += g * x[i] * y[i]
                        }
                    }
                    let vx = mxx - mx * mx, vy = myy - my * my, vxy = mxy - mx * my
                    channelSum += (2 * mx * my + c1) * (2 * vxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2))
                }
            }
            sum += channelSum / Double((a.width - 10) * (a.height - 10))
        }
        return sum / Double(a.channels)
    }
}
