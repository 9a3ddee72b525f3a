import Foundation
import SKDImage
import XCTest

final class PlotTests: XCTestCase {
    private func pixel(_ image: Image, _ x: Int, _ y: Int) -> PlotColor {
        let b = image.bytes, i = 3 * (y * image.width + x)
        return PlotColor(b[i], b[i + 1], b[i + 2])
    }

    private func count(_ image: Image, where predicate: (PlotColor) -> Bool) -> Int {
        var n = 0
        for y in 0..<image.height { for x in 0..<image.width where predicate(pixel(image, x, y)) { n += 1 } }
        return n
    }

    func testLinesCoverTheirPathOnly() {
        var canvas = Canvas(width: 40, height: 30)
        canvas.line(from: (5.5, 5.5), to: (35.5, 25.5), color: .black, thickness: 2)
        let image = canvas.image
        // Pixels on the segment are dark; pixels far from it are untouched.
        for t in stride(from: 0.0, through: 1.0, by: 0.1) {
            let x = Int(5.5 + 30 * t), y = Int(5.5 + 20 * t)
            XCTAssertLessThan(Int(pixel(image, x, y).r), 100, "(\(x), \(y)) should be on the line")
        }
        XCTAssertEqual(pixel(image, 35, 5), .white)
        XCTAssertEqual(pixel(image, 5, 25), .white)
        // Anti-aliasing: some pixels are neither white nor black.
        XCTAssertGreaterThan(count(image) { $0.r > 20 && $0.r < 235 }, 5)
        // A horizontal line of thickness 1 at a pixel row covers exactly that row.
        var flat = Canvas(width: 20, height: 9)
        flat.line(from: (2, 4.5), to: (18, 4.5), color: .black, thickness: 1)
        for x in 3..<17 {
            XCTAssertEqual(pixel(flat.image, x, 4), .black)
            XCTAssertEqual(pixel(flat.image, x, 2), .white)
            XCTAssertEqual(pixel(flat.image, x, 6), .white)
        }
    }

    func testTextUsesTheBitmapFont() {
        XCTAssertEqual(BitmapFont.width("abc", scale: 1), 17)
        XCTAssertEqual(BitmapFont.width("abc", scale: 2), 34)
        XCTAssertEqual(BitmapFont.width("", scale: 2), 0)
        var canvas = Canvas(width: 30, height: 10)
        canvas.text("I", x: 1, y: 1)
        // 'I' is columns 0x00, 0x41, 0x7F, 0x41, 0x00: a vertical bar of 7 pixels with serifs.
        let image = canvas.image
        XCTAssertEqual(count(image) { $0 == .black }, 7 + 4)
        for row in 1...7 { XCTAssertEqual(pixel(image, 3, row), .black) }
        // Scale 2 covers four times the pixels; unknown characters draw as '?'.
        var big = Canvas(width: 40, height: 20)
        big.text("I", x: 0, y: 0, scale: 2)
        XCTAssertEqual(count(big.image) { $0 == .black }, 4 * 11)
        var unknown = Canvas(width: 10, height: 10), question = Canvas(width: 10, height: 10)
        unknown.text("σ", x: 0, y: 0)
        question.text("?", x: 0, y: 0)
        XCTAssertEqual(unknown.pixels, question.pixels)
        // Vertical text has the same pixels, turned a quarter.
        var vertical = Canvas(width: 10, height: 30)
        vertical.verticalText("Ab", x: 1, y: 25)
        var horizontal = Canvas(width: 30, height: 10)
        horizontal.text("Ab", x: 1, y: 1)
        XCTAssertEqual(count(vertical.image) { $0 == .black }, count(horizontal.image) { $0 == .black })
    }

    func testTicksAndLabels() {
        XCTAssertEqual(LinePlot.linearTicks(0, 1000), [0, 200, 400, 600, 800, 1000])
        XCTAssertEqual(LinePlot.linearTicks(27.3, 29.1), [27.5, 28, 28.5, 29])
        XCTAssertEqual(LinePlot.linearTicks(-1, 1).count, 5)
        // Log axes: whole decades, plus 2× and 5× when fewer than 2.5 decades show.
        XCTAssertEqual(LinePlot.logTicks(-4, 1), [-4, -3, -2, -1, 0, 1])
        let dense = LinePlot.logTicks(log10(0.03), log10(0.6)).map { pow(10, $0) }
        for (a, b) in zip(dense, [0.05, 0.1, 0.2, 0.5]) { XCTAssertEqual(a, b, accuracy: 1e-12) }
        XCTAssertEqual(LinePlot.label(0), "0")
        XCTAssertEqual(LinePlot.label(200), "200")
        XCTAssertEqual(LinePlot.label(28.5), "28.5")
        XCTAssertEqual(LinePlot.label(0.05), "0.05")
        XCTAssertEqual(LinePlot.label(1e-4), "1e-4")
        XCTAssertEqual(LinePlot.label(250_000), "2.5e5")
    }

    func testSideBySidePlacesPanelsWithCaptions() {
        func solid(_ w: Int, _ h: Int, _ v: UInt8) -> Image { Image(width: w, height: h, channels: 3, bytes: [UInt8](repeating: v, count: w * h * 3)) }
        let panels = [("input\n21.3 dB", solid(20, 10, 10)), ("teacher", solid(20, 10, 60)), ("target", solid(20, 10, 110))]
        let gap = 8, scale = 2
        let image = SideBySide.compose(panels.map { (caption: $0.0, image: $0.1) }, captionScale: scale, gap: gap)
        // Columns are as wide as their widest element (here the two-word caption lines).
        let widths = panels.map { max(20, $0.0.split(separator: "\n").map { BitmapFont.width(String($0), scale: scale) }.max()!) }
        XCTAssertEqual(image.width, widths.reduce(gap) { $0 + $1 + gap })
        XCTAssertEqual(image.height, gap + 10 + 2 * (BitmapFont.height + 3) * scale + gap + gap)
        var x = gap
        for (i, panel) in panels.enumerated() {
            let left = x + (widths[i] - 20) / 2
            XCTAssertEqual(pixel(image, left, gap), PlotColor(panel.1.bytes[0], panel.1.bytes[0], panel.1.bytes[0]))
            XCTAssertEqual(pixel(image, left + 19, gap + 9), PlotColor(panel.1.bytes[0], panel.1.bytes[0], panel.1.bytes[0]))
            x += widths[i] + gap
        }
        // Captions are drawn in black below the images.
        XCTAssertGreaterThan(count(image) { $0 == .black }, 50)
        // A grid: two per row.
        let grid = SideBySide.compose(panels.map { (caption: $0.0, image: $0.1) }, columns: 2)
        XCTAssertLessThan(grid.width, image.width)
        XCTAssertGreaterThan(grid.height, image.height)
    }
}
