import Foundation
import SKDImage
import XCTest

/// `CurvePlot`: several named curves in one figure, one palette colour each.
final class CurvePlotTests: XCTestCase {
    private func count(_ image: Image, _ color: PlotColor) -> Int {
        var n = 0
        let b = image.bytes
        for i in stride(from: 0, to: b.count, by: 3) where PlotColor(b[i], b[i + 1], b[i + 2]) == color { n += 1 }
        return n
    }

    func testEveryCurveIsDrawnInItsOwnColour() {
        let curves: [(name: String, points: [(x: Double, y: Double)])] = [
            ("none", [(10, 22), (20, 25), (30, 26.5)]),
            ("skd", [(30, 23), (60, 26), (90, 27)]),
            ("dckd", [(100, 24)]),
        ]
        let image = CurvePlot.render(curves, title: "psnr", xLabel: "s", yLabel: "dB", width: 600, height: 400)
        XCTAssertEqual([image.width, image.height], [600, 400])
        for i in 0..<3 { XCTAssertGreaterThan(count(image, PlotColor.palette[i]), 20, "curve \(i) (\(curves[i].name)) is not drawn") }
        XCTAssertEqual(count(image, PlotColor.palette[3]), 0, "no fourth curve")
        // No curves: an empty frame, not a failure.
        let empty = CurvePlot.render([], title: "psnr", xLabel: "s", yLabel: "dB")
        XCTAssertEqual(count(empty, PlotColor.palette[0]), 0)
    }
}
