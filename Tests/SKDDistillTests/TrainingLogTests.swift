import Foundation
import SKDDistill
import SKDImage
import XCTest

/// The trainer's log.jsonl, read back (SKDDistill) and drawn (SKDImage's `TrainingPlot`).
final class TrainingLogTests: XCTestCase {
    private func count(_ image: Image, where predicate: (PlotColor) -> Bool) -> Int {
        var n = 0
        let b = image.bytes
        for i in stride(from: 0, to: b.count, by: 3) where predicate(PlotColor(b[i], b[i + 1], b[i + 2])) { n += 1 }
        return n
    }

    func testTrainingPlotDrawsEveryTermAndValidation() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("skd-plot-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var lines: [String] = []
        for i in stride(from: 10, through: 200, by: 10) {
            let rec = 0.2 * exp(-Double(i) / 80), gk = 0.5 * exp(-Double(i) / 150)
            lines.append("{\"iter\": \(i), \"lr\": 0.0002, \"seconds\": \(i), \"rec\": \(rec), \"gk\": \(gk), \"total\": \(rec + 0.2 * gk)}")
            if i % 50 == 0 { lines.append("{\"iter\": \(i), \"val_psnr\": \(25 + Double(i) / 50), \"val_ssim\": 0.8}") }
        }
        // A resumed run repeats iteration 100: the later entry wins.
        lines.append("{\"iter\": 100, \"rec\": 0.3, \"gk\": 0.2, \"total\": 0.34}")
        let log = dir.appendingPathComponent("log.jsonl")
        try Data(lines.joined(separator: "\n").utf8).write(to: log)
        let entries = try TrainingLog.entries(at: log)
        XCTAssertEqual(entries.count, lines.count)
        let image = try TrainingPlot.render(log: log, title: "unit")
        XCTAssertEqual([image.width, image.height], [1000, 760])
        // Each series' colour appears: total (palette 0), rec (1), gk (2), validation PSNR (3).
        for (index, color) in PlotColor.palette.prefix(4).enumerated() {
            XCTAssertGreaterThan(count(image) { $0 == color }, 20, "series \(index) is not drawn")
        }
        let png = dir.appendingPathComponent("training.png")
        try image.write(to: png)
        XCTAssertEqual(try Image(contentsOf: png), image)

        // Without validation there is one panel; without positive values the panel says so instead of failing.
        let lossesOnly = TrainingPlot.render(entries: entries.filter { $0["val_psnr"] == nil })
        XCTAssertEqual(count(lossesOnly) { $0 == PlotColor.palette[3] }, 0)
        _ = TrainingPlot.render(entries: [["iter": 1, "rec": 0]])
        _ = TrainingPlot.render(entries: [])

        try Data("{\"iter\": 1, \"rec\": 0.1}\nnot json\n".utf8).write(to: log)
        XCTAssertThrowsError(try TrainingLog.entries(at: log)) { XCTAssertTrue("\($0)".contains("line 2") && "\($0)".contains(log.path), "\($0)") }
    }

    func testImplausibleValuesAreRejectedWithTheirLine() throws {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("skd-log-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: log) }
        try Data("{\"iter\": 1, \"rec\": 0.1}\n{\"iter\": 2.5, \"rec\": 0.1}\n".utf8).write(to: log)
        XCTAssertThrowsError(try TrainingLog.entries(at: log)) { XCTAssertTrue("\($0)".contains("line 2") && "\($0)".contains("'iter'"), "\($0)") }
        try Data("{\"iter\": 1, \"rec\": 1e13}\n".utf8).write(to: log)
        XCTAssertThrowsError(try TrainingPlot.render(log: log)) { XCTAssertTrue("\($0)".contains("line 1") && "\($0)".contains("'rec'"), "\($0)") }
    }
}
