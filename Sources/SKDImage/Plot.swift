// Pictures drawn by the project itself, with no plotting library: a small RGB raster canvas (anti-aliased
// lines, rectangles, a built-in 5×7 bitmap font), line plots with axes, ticks, legend and labels (linear or log
// scale), the training-curve figure drawn from a run's log entries (SKDDistill's TrainingLog reads them), and a
// side-by-side composer for comparing restorations. Everything is written as PNG through `Image.write`.

import Foundation

/// An 8-bit RGB colour.
public struct PlotColor: Equatable, Sendable {
    /// Red, green and blue, 0...255.
    public var r: UInt8, g: UInt8, b: UInt8

    /// The colour with these red, green and blue values.
    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) { self.r = r; self.g = g; self.b = b }

    /// Background.
    public static let white = PlotColor(255, 255, 255)
    /// Text, frames and ticks.
    public static let black = PlotColor(0, 0, 0)
    /// Legend frame and notes.
    public static let gray = PlotColor(128, 128, 128)
    /// Grid lines.
    public static let lightGray = PlotColor(225, 225, 225)

    /// Ten well-separated series colours (matplotlib's "tab10").
    public static let palette: [PlotColor] = [
        PlotColor(31, 119, 180), PlotColor(255, 127, 14), PlotColor(44, 160, 44), PlotColor(214, 39, 40),
        PlotColor(148, 103, 189), PlotColor(140, 86, 75), PlotColor(227, 119, 194), PlotColor(127, 127, 127),
        PlotColor(188, 189, 34), PlotColor(23, 190, 207),
    ]
}

/// A raster RGB canvas with a top-left origin, x to the right and y downwards.
public struct Canvas {
    /// Pixels per row.
    public let width: Int
    /// Rows.
    public let height: Int
    /// Interleaved RGB samples, row-major.
    public private(set) var pixels: [UInt8]

    /// A `width`×`height` canvas filled with `background`.
    public init(width: Int, height: Int, background: PlotColor = .white) {
        precondition(width > 0 && height > 0, "Canvas: size \(width)x\(height) must be positive")
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            pixels[3 * i] = background.r; pixels[3 * i + 1] = background.g; pixels[3 * i + 2] = background.b
        }
    }

    /// The canvas as an 8-bit RGB image.
    public var image: Image { Image(width: width, height: height, channels: 3, bytes: pixels) }

    /// Mixes `color` into pixel (x, y) with opacity `alpha` (0...1); points outside the canvas are ignored.
    public mutating func blend(x: Int, y: Int, color: PlotColor, alpha: Double = 1) {
        guard x >= 0, y >= 0, x < width, y < height, alpha > 0 else { return }
        let a = min(alpha, 1), i = 3 * (y * width + x)
        func mix(_ old: UInt8, _ new: UInt8) -> UInt8 { UInt8((Double(old) * (1 - a) + Double(new) * a).rounded()) }
        pixels[i] = mix(pixels[i], color.r); pixels[i + 1] = mix(pixels[i + 1], color.g); pixels[i + 2] = mix(pixels[i + 2], color.b)
    }

    /// Fills the rectangle with top-left (x, y), clipped to the canvas.
    public mutating func fill(x: Int, y: Int, width w: Int, height h: Int, color: PlotColor) {
        for row in max(y, 0)..<max(min(y + h, height), max(y, 0)) {
            for column in max(x, 0)..<max(min(x + w, width), max(x, 0)) { blend(x: column, y: row, color: color) }
        }
    }

    /// Outlines the rectangle with top-left (x, y) with 1-pixel lines.
    public mutating func stroke(x: Int, y: Int, width w: Int, height h: Int, color: PlotColor) {
        fill(x: x, y: y, width: w, height: 1, color: color)
        fill(x: x, y: y + h - 1, width: w, height: 1, color: color)
        fill(x: x, y: y, width: 1, height: h, color: color)
        fill(x: x + w - 1, y: y, width: 1, height: h, color: color)
    }

    /// An anti-aliased line segment of the given thickness between two points (pixel centres at integer + 0.5).
    public mutating func line(from a: (x: Double, y: Double), to b: (x: Double, y: Double), color: PlotColor, thickness: Double = 1.5) {
        let r = thickness / 2
        let x0 = Int((min(a.x, b.x) - r - 1).rounded(.down)), x1 = Int((max(a.x, b.x) + r + 1).rounded(.up))
        let y0 = Int((min(a.y, b.y) - r - 1).rounded(.down)), y1 = Int((max(a.y, b.y) + r + 1).rounded(.up))
        let dx = b.x - a.x, dy = b.y - a.y, length2 = dx * dx + dy * dy
        for py in max(y0, 0)...max(min(y1, height - 1), 0) {
            for px in max(x0, 0)...max(min(x1, width - 1), 0) {
                let cx = Double(px) + 0.5, cy = Double(py) + 0.5
                // Distance from the pixel centre to the segment.
                let t = length2 == 0 ? 0 : min(max(((cx - a.x) * dx + (cy - a.y) * dy) / length2, 0), 1)
                let ex = cx - (a.x + t * dx), ey = cy - (a.y + t * dy)
                let coverage = r + 0.5 - (ex * ex + ey * ey).squareRoot()
                if coverage > 0 { blend(x: px, y: py, color: color, alpha: coverage) }
            }
        }
    }

    /// Draws `text` with the built-in 5×7 font, top-left at (x, y), each font pixel `scale`×`scale`.
    /// Characters outside printable ASCII are drawn as `?`.
    public mutating func text(_ text: String, x: Int, y: Int, color: PlotColor = .black, scale: Int = 1) {
        var cx = x
        for character in text {
            let columns = BitmapFont.glyph(character)
            for (c, bits) in columns.enumerated() {
                for row in 0..<7 where bits & (1 << row) != 0 {
                    fill(x: cx + c * scale, y: y + row * scale, width: scale, height: scale, color: color)
                }
            }
            cx += BitmapFont.advance * scale
        }
    }

    /// Draws `text` rotated a quarter turn counter-clockwise (reading upwards), its bottom-left at (x, y).
    public mutating func verticalText(_ text: String, x: Int, y: Int, color: PlotColor = .black, scale: Int = 1) {
        var cy = y
        for character in text {
            let columns = BitmapFont.glyph(character)
            for (c, bits) in columns.enumerated() {
                for row in 0..<7 where bits & (1 << row) != 0 {
                    fill(x: x + row * scale, y: cy - (c + 1) * scale, width: scale, height: scale, color: color)
                }
            }
            cy -= BitmapFont.advance * scale
        }
    }

    /// Copies `image` (8-bit RGB or gray; float images are quantised) with its top-left at (x, y), clipped.
    public mutating func draw(_ image: Image, x: Int, y: Int) {
        let rgb = image.rgb().bytes
        for row in 0..<image.height where y + row >= 0 && y + row < height {
            for column in 0..<image.width where x + column >= 0 && x + column < width {
                let s = 3 * (row * image.width + column), d = 3 * ((y + row) * width + x + column)
                pixels[d] = rgb[s]; pixels[d + 1] = rgb[s + 1]; pixels[d + 2] = rgb[s + 2]
            }
        }
    }
}

/// A 5×7 bitmap font for printable ASCII (the classic HD44780-style glyphs), one byte per column, bit 0 at top.
public enum BitmapFont {
    /// Horizontal distance between character origins, in font pixels (5 columns + 1 gap).
    public static let advance = 6
    /// Glyph height in font pixels.
    public static let height = 7

    /// The width in canvas pixels of `text` at `scale` (without the trailing gap).
    public static func width(_ text: String, scale: Int = 1) -> Int { max(text.count * advance - 1, 0) * scale }

    /// The five column bytes of `character`.
    static func glyph(_ character: Character) -> ArraySlice<UInt8> {
        var code = Int(character.asciiValue ?? 63)
        if code < 32 || code > 126 { code = 63 }
        let start = (code - 32) * 5
        return glyphs[start..<(start + 5)]
    }

    // swiftlint:disable comma
    static let glyphs: [UInt8] = [
        0x00,0x00,0x00,0x00,0x00, 0x00,0x00,0x5F,0x00,0x00, 0x00,0x07,0x00,0x07,0x00, 0x14,0x7F,0x14,0x7F,0x14, // space ! " #
        0x24,0x2A,0x7F,0x2A,0x12, 0x23,0x13,0x08,0x64,0x62, 0x36,0x49,0x55,0x22,0x50, 0x00,0x05,0x03,0x00,0x00, // $ % & '
        0x00,0x1C,0x22,0x41,0x00, 0x00,0x41,0x22,0x1C,0x00, 0x08,0x2A,0x1C,0x2A,0x08, 0x08,0x08,0x3E,0x08,0x08, // ( ) * +
        0x00,0x50,0x30,0x00,0x00, 0x08,0x08,0x08,0x08,0x08, 0x00,0x60,0x60,0x00,0x00, 0x20,0x10,0x08,0x04,0x02, // , - . /
        0x3E,0x51,0x49,0x45,0x3E, 0x00,0x42,0x7F,0x40,0x00, 0x42,0x61,0x51,0x49,0x46, 0x21,0x41,0x45,0x4B,0x31, // 0 1 2 3
        0x18,0x14,0x12,0x7F,0x10, 0x27,0x45,0x45,0x45,0x39, 0x3C,0x4A,0x49,0x49,0x30, 0x01,0x71,0x09,0x05,0x03, // 4 5 6 7
        0x36,0x49,0x49,0x49,0x36, 0x06,0x49,0x49,0x29,0x1E, 0x00,0x36,0x36,0x00,0x00, 0x00,0x56,0x36,0x00,0x00, // 8 9 : ;
        0x08,0x14,0x22,0x41,0x00, 0x14,0x14,0x14,0x14,0x14, 0x00,0x41,0x22,0x14,0x08, 0x02,0x01,0x51,0x09,0x06, // < = > ?
        0x32,0x49,0x79,0x41,0x3E, 0x7E,0x11,0x11,0x11,0x7E, 0x7F,0x49,0x49,0x49,0x36, 0x3E,0x41,0x41,0x41,0x22, // @ A B C
        0x7F,0x41,0x41,0x22,0x1C, 0x7F,0x49,0x49,0x49,0x41, 0x7F,0x09,0x09,0x09,0x01, 0x3E,0x41,0x49,0x49,0x7A, // D E F G
        0x7F,0x08,0x08,0x08,0x7F, 0x00,0x41,0x7F,0x41,0x00, 0x20,0x40,0x41,0x3F,0x01, 0x7F,0x08,0x14,0x22,0x41, // H I J K
        0x7F,0x40,0x40,0x40,0x40, 0x7F,0x02,0x0C,0x02,0x7F, 0x7F,0x04,0x08,0x10,0x7F, 0x3E,0x41,0x41,0x41,0x3E, // L M N O
        0x7F,0x09,0x09,0x09,0x06, 0x3E,0x41,0x51,0x21,0x5E, 0x7F,0x09,0x19,0x29,0x46, 0x46,0x49,0x49,0x49,0x31, // P Q R S
        0x01,0x01,0x7F,0x01,0x01, 0x3F,0x40,0x40,0x40,0x3F, 0x1F,0x20,0x40,0x20,0x1F, 0x3F,0x40,0x38,0x40,0x3F, // T U V W
        0x63,0x14,0x08,0x14,0x63, 0x07,0x08,0x70,0x08,0x07, 0x61,0x51,0x49,0x45,0x43, 0x00,0x7F,0x41,0x41,0x00, // X Y Z [
        0x02,0x04,0x08,0x10,0x20, 0x00,0x41,0x41,0x7F,0x00, 0x04,0x02,0x01,0x02,0x04, 0x40,0x40,0x40,0x40,0x40, // \ ] ^ _
        0x00,0x01,0x02,0x04,0x00, 0x20,0x54,0x54,0x54,0x78, 0x7F,0x48,0x44,0x44,0x38, 0x38,0x44,0x44,0x44,0x20, // ` a b c
        0x38,0x44,0x44,0x48,0x7F, 0x38,0x54,0x54,0x54,0x18, 0x08,0x7E,0x09,0x01,0x02, 0x0C,0x52,0x52,0x52,0x3E, // d e f g
        0x7F,0x08,0x04,0x04,0x78, 0x00,0x44,0x7D,0x40,0x00, 0x20,0x40,0x44,0x3D,0x00, 0x7F,0x10,0x28,0x44,0x00, // h i j k
        0x00,0x41,0x7F,0x40,0x00, 0x7C,0x04,0x18,0x04,0x78, 0x7C,0x08,0x04,0x04,0x78, 0x38,0x44,0x44,0x44,0x38, // l m n o
        0x7C,0x14,0x14,0x14,0x08, 0x08,0x14,0x14,0x18,0x7C, 0x7C,0x08,0x04,0x04,0x08, 0x48,0x54,0x54,0x54,0x20, // p q r s
        0x04,0x3F,0x44,0x40,0x20, 0x3C,0x40,0x40,0x20,0x7C, 0x1C,0x20,0x40,0x20,0x1C, 0x3C,0x40,0x30,0x40,0x3C, // t u v w
        0x44,0x28,0x10,0x28,0x44, 0x0C,0x50,0x50,0x50,0x3C, 0x44,0x64,0x54,0x4C,0x44, 0x00,0x08,0x36,0x41,0x00, // x y z {
        0x00,0x00,0x7F,0x00,0x00, 0x00,0x41,0x36,0x08,0x00, 0x08,0x04,0x08,0x10,0x08,                           // | } ~
    ]
    // swiftlint:enable comma
}

// MARK: - Line plots

/// One named curve of a plot.
public struct PlotSeries {
    /// The legend entry.
    public var name: String
    /// The points, in drawing order.
    public var points: [(x: Double, y: Double)]
    /// The line colour.
    public var color: PlotColor
    /// Whether each point also gets a dot (useful for sparse series such as validation results).
    public var markers: Bool

    /// A series drawn as a line of `color` through `points`, with dots when `markers`.
    public init(name: String, points: [(x: Double, y: Double)], color: PlotColor, markers: Bool = false) {
        self.name = name; self.points = points; self.color = color; self.markers = markers
    }
}

/// A line plot with a frame, grid, tick labels, axis labels, a title and a legend.
public struct LinePlot {
    /// Centred above the frame.
    public var title: String
    /// Below the x tick labels.
    public var xLabel: String
    /// Left of the y tick labels, reading upwards.
    public var yLabel: String
    /// A base-10 logarithmic y axis (non-positive values are left out).
    public var logY: Bool
    /// The curves, in legend order.
    public var series: [PlotSeries]
    /// The width reserved right of the frame for the legend; `nil` fits this plot's names. Plots stacked in one
    /// figure pass the same value so their frames line up.
    public var legendWidth: Int?

    /// A plot of `series`; see the properties.
    public init(title: String, xLabel: String, yLabel: String, logY: Bool = false, series: [PlotSeries], legendWidth: Int? = nil) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel; self.logY = logY; self.series = series
        self.legendWidth = legendWidth
    }

    /// The legend width `names` need at the plot's font scale.
    public static func legendWidth(for names: [String]) -> Int {
        names.isEmpty ? 0 : names.map { BitmapFont.width($0, scale: 2) }.max()! + 56
    }

    /// Ticks of a linear axis over `low...high`: multiples of 1, 2 or 5 × 10^k, about `target` of them.
    public static func linearTicks(_ low: Double, _ high: Double, target: Int = 6) -> [Double] {
        guard high > low else { return [low] }
        let raw = (high - low) / Double(max(target - 1, 1))
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        var ticks: [Double] = []
        var v = ceil(low / step - 1e-9) * step
        while v <= high + step * 1e-9 { ticks.append(abs(v) < step * 1e-9 ? 0 : v); v += step }
        return ticks
    }

    /// Ticks of a log axis over `10^low...10^high` (exponents): every decade, plus 2× and 5× when few decades show.
    public static func logTicks(_ low: Double, _ high: Double) -> [Double] {
        var ticks: [Double] = []
        let decades = Int(floor(low))...Int(ceil(high))
        let dense = high - low < 2.5
        for k in decades {
            for m in dense ? [1.0, 2, 5] : [1.0] {
                let e = log10(m) + Double(k)
                if e >= low - 1e-9 && e <= high + 1e-9 { ticks.append(e) }
            }
        }
        return ticks
    }

    /// A short label for a tick value.
    public static func label(_ v: Double) -> String {
        if v == 0 { return "0" }
        let a = abs(v)
        if a >= 1e5 || a < 1e-3 {
            let exponent = Int(floor(log10(a))), mantissa = v / pow(10, Double(exponent))
            let m = abs(mantissa - mantissa.rounded()) < 1e-6 ? String(Int(mantissa.rounded())) : String(format: "%.1f", mantissa)
            return "\(m)e\(exponent)"
        }
        var text = String(format: a >= 100 ? "%.0f" : a >= 1 ? "%.2f" : "%.4f", v)
        if text.contains(".") {
            while text.hasSuffix("0") { text.removeLast() }
            if text.hasSuffix(".") { text.removeLast() }
        }
        return text
    }

    /// Draws the plot into the rectangle (x, y, width, height) of `canvas`.
    public func draw(on canvas: inout Canvas, x: Int, y: Int, width: Int, height: Int) {
        let scale = 2, charH = BitmapFont.height * scale
        // The legend sits right of the frame, so it never hides a curve.
        let named = series.filter { !$0.name.isEmpty }
        let legendWidth = self.legendWidth ?? LinePlot.legendWidth(for: named.map(\.name))
        let left = x + 16 + charH + 8 * BitmapFont.advance * scale, right = x + width - 36 - legendWidth
        let top = y + charH + 16, bottom = y + height - 2 * charH - 22
        guard right > left + 20, bottom > top + 20 else { return }
        canvas.text(title, x: (left + right - BitmapFont.width(title, scale: scale)) / 2, y: y + 6, scale: scale)

        func transform(_ v: Double) -> Double? { logY ? (v > 0 && v.isFinite ? log10(v) : nil) : (v.isFinite ? v : nil) }
        let visible = series.map { s in s.points.compactMap { p in transform(p.y).map { (x: p.x, y: $0) } } }
        let xs = visible.flatMap { $0.map(\.x) }, ys = visible.flatMap { $0.map(\.y) }
        canvas.stroke(x: left, y: top, width: right - left + 1, height: bottom - top + 1, color: .black)
        guard let xMin0 = xs.min(), let xMax0 = xs.max(), let yMin0 = ys.min(), let yMax0 = ys.max() else {
            let note = "no data"
            canvas.text(note, x: (left + right - BitmapFont.width(note, scale: scale)) / 2, y: (top + bottom) / 2, color: .gray, scale: scale)
            return
        }
        var xMin = xMin0, xMax = xMax0, yMin = yMin0, yMax = yMax0
        if xMax - xMin < 1e-12 { xMin -= 1; xMax += 1 }
        if yMax - yMin < 1e-12 { let pad = logY ? 0.5 : max(abs(yMin) * 0.05, 0.5); yMin -= pad; yMax += pad }
        let yPad = (yMax - yMin) * 0.05
        yMin -= yPad; yMax += yPad
        func px(_ v: Double) -> Double { Double(left) + (v - xMin) / (xMax - xMin) * Double(right - left) }
        func py(_ v: Double) -> Double { Double(bottom) - (v - yMin) / (yMax - yMin) * Double(bottom - top) }

        // Grid and tick labels.
        for t in LinePlot.linearTicks(xMin0, xMax0) where t >= xMin && t <= xMax {
            let X = Int(px(t))
            canvas.fill(x: X, y: top + 1, width: 1, height: bottom - top - 1, color: .lightGray)
            canvas.fill(x: X, y: bottom, width: 1, height: 5, color: .black)
            let text = LinePlot.label(t)
            canvas.text(text, x: X - BitmapFont.width(text, scale: scale) / 2, y: bottom + 8, scale: scale)
        }
        let yTicks = logY ? LinePlot.logTicks(yMin, yMax) : LinePlot.linearTicks(yMin, yMax)
        for t in yTicks where t >= yMin && t <= yMax {
            let Y = Int(py(t))
            canvas.fill(x: left + 1, y: Y, width: right - left - 1, height: 1, color: .lightGray)
            canvas.fill(x: left - 5, y: Y, width: 5, height: 1, color: .black)
            let text = LinePlot.label(logY ? pow(10, t) : t)
            canvas.text(text, x: left - 9 - BitmapFont.width(text, scale: scale), y: Y - charH / 2, scale: scale)
        }
        canvas.stroke(x: left, y: top, width: right - left + 1, height: bottom - top + 1, color: .black)
        canvas.text(xLabel, x: (left + right - BitmapFont.width(xLabel, scale: scale)) / 2, y: bottom + charH + 14, scale: scale)
        canvas.verticalText(yLabel, x: x + 6, y: (top + bottom + BitmapFont.width(yLabel, scale: scale)) / 2, scale: scale)

        // Curves.
        for (s, points) in zip(series, visible) {
            for i in 1..<max(points.count, 1) {
                canvas.line(from: (px(points[i - 1].x), py(points[i - 1].y)), to: (px(points[i].x), py(points[i].y)), color: s.color, thickness: 2)
            }
            if s.markers || points.count == 1 {
                for p in points { canvas.line(from: (px(p.x), py(p.y)), to: (px(p.x), py(p.y)), color: s.color, thickness: 7) }
            }
        }

        // Legend, right of the frame.
        guard !named.isEmpty else { return }
        let boxW = legendWidth - 12, boxH = named.count * (charH + 8) + 8
        let bx = right + 24, by = top
        canvas.stroke(x: bx, y: by, width: boxW, height: boxH, color: .gray)
        for (i, s) in named.enumerated() {
            let ly = by + 8 + i * (charH + 8)
            canvas.line(from: (Double(bx + 8), Double(ly + charH / 2)), to: (Double(bx + 30), Double(ly + charH / 2)), color: s.color, thickness: 3)
            canvas.text(s.name, x: bx + 36, y: ly, scale: scale)
        }
    }
}

// MARK: - Training curves

/// The figure of a training run: loss terms over iterations (log scale) and, when the run validated,
/// validation PSNR over iterations.
public enum TrainingPlot {
    /// The order loss terms are listed in; others follow alphabetically.
    static let termOrder = ["total", "rec", "gk", "gk_plain", "gk_channel", "gk_spatial", "cl", "wave", "okd"]
    /// Fields of log entries that are not loss terms.
    static let bookkeeping: Set<String> = ["iter", "lr", "seconds", "val_psnr", "val_ssim"]

    /// Draws the figure for log `entries`.
    ///
    /// - Parameters:
    ///   - entries: one dictionary per log line, with `iter` and the loss terms, `lr`, `seconds`, `val_psnr`,
    ///     `val_ssim` as a run writes them (SKDDistill's `TrainingLog.entries(at:)` reads a run's `log.jsonl` into
    ///     this form); a later entry of an iteration replaces an earlier one.
    ///   - title: shown above the loss panel.
    ///   - width: the image width, pixels.
    ///   - height: the image height, pixels (the loss panel takes 3/5 of it when there is validation).
    /// - Returns: an RGB image of `width`×`height`.
    public static func render(entries: [[String: Double]], title: String = "training", width: Int = 1000, height: Int = 760) -> Image {
        var losses: [String: [Double: Double]] = [:], psnr: [Double: Double] = [:]
        for e in entries {
            guard let iter = e["iter"] else { continue }
            if let p = e["val_psnr"] { psnr[iter] = p }
            for (key, value) in e where !bookkeeping.contains(key) { losses[key, default: [:]][iter] = value }
        }
        let names = losses.keys.sorted { a, b in
            let ra = termOrder.firstIndex(of: a) ?? termOrder.count, rb = termOrder.firstIndex(of: b) ?? termOrder.count
            return (ra, a) < (rb, b)
        }
        let series = names.enumerated().map { i, name in
            PlotSeries(name: name, points: losses[name]!.sorted { $0.key < $1.key }.map { (x: $0.key, y: $0.value) },
                       color: PlotColor.palette[i % PlotColor.palette.count])
        }
        var canvas = Canvas(width: width, height: height)
        let hasValidation = !psnr.isEmpty
        let lossHeight = hasValidation ? height * 3 / 5 : height
        let legend = LinePlot.legendWidth(for: names + (hasValidation ? ["val PSNR"] : []))
        LinePlot(title: "\(title): loss terms", xLabel: "iteration", yLabel: "loss (log scale)", logY: true, series: series, legendWidth: legend)
            .draw(on: &canvas, x: 0, y: 0, width: width, height: lossHeight)
        if hasValidation {
            let points = psnr.sorted { $0.key < $1.key }.map { (x: $0.key, y: $0.value) }
            LinePlot(title: "validation PSNR", xLabel: "iteration", yLabel: "PSNR (dB)",
                     series: [PlotSeries(name: "val PSNR", points: points, color: PlotColor.palette[3], markers: true)], legendWidth: legend)
                .draw(on: &canvas, x: 0, y: lossHeight, width: width, height: height - lossHeight)
        }
        return canvas.image
    }
}

// MARK: - Side-by-side comparisons

/// Lays out images in a row (or a grid) with captions underneath, for comparing restorations
/// (`[input | teacher | skd | none | target]`).
public enum SideBySide {
    /// Composes `panels` left to right, `columns` per row, each caption centred below its image (lines split at
    /// `\n`). Images may differ in size; each row is as tall as its tallest image.
    ///
    /// - Parameters:
    ///   - panels: the images with their captions, in reading order.
    ///   - columns: panels per row; `nil`: all in one row.
    ///   - captionScale: font scale of the captions.
    ///   - gap: pixels between panels and around the edge.
    ///   - background: the colour around and between the panels.
    public static func compose(_ panels: [(caption: String, image: Image)], columns: Int? = nil, captionScale: Int = 2,
                               gap: Int = 8, background: PlotColor = .white) -> Image {
        precondition(!panels.isEmpty, "SideBySide.compose: no panels")
        let perRow = max(1, min(columns ?? panels.count, panels.count))
        let lineHeight = (BitmapFont.height + 3) * captionScale
        let rows = stride(from: 0, to: panels.count, by: perRow).map { Array(panels[$0..<min($0 + perRow, panels.count)]) }
        let columnWidths = (0..<perRow).map { c in
            rows.compactMap { c < $0.count ? max($0[c].image.width, $0[c].caption.split(separator: "\n").map { BitmapFont.width(String($0), scale: captionScale) }.max() ?? 0) : nil }.max() ?? 0
        }
        let rowHeights = rows.map { row in
            row.map(\.image.height).max()! + (row.map { $0.caption.split(separator: "\n").count }.max() ?? 0) * lineHeight + gap
        }
        let width = columnWidths.reduce(gap) { $0 + $1 + gap }, height = rowHeights.reduce(gap) { $0 + $1 + gap }
        var canvas = Canvas(width: width, height: height, background: background)
        var y = gap
        for (r, row) in rows.enumerated() {
            var x = gap
            let imageHeight = row.map(\.image.height).max()!
            for (c, panel) in row.enumerated() {
                canvas.draw(panel.image, x: x + (columnWidths[c] - panel.image.width) / 2, y: y)
                for (i, line) in panel.caption.split(separator: "\n").enumerated() {
                    let text = String(line)
                    canvas.text(text, x: x + (columnWidths[c] - BitmapFont.width(text, scale: captionScale)) / 2,
                                y: y + imageHeight + gap / 2 + i * lineHeight, scale: captionScale)
                }
                x += columnWidths[c] + gap
            }
            y += rowHeights[r] + gap
        }
        return canvas.image
    }
}
