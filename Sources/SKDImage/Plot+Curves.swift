// Several named curves in one figure (one colour each, with markers), e.g. a study's held-out PSNR against training
// time, one curve per method.

import Foundation

/// A figure of several named curves on common axes.
public enum CurvePlot {
    /// Draws `curves` (in legend order, colours from `PlotColor.palette`) on linear axes.
    ///
    /// - Parameters:
    ///   - curves: each a legend name and its points (drawn in order, each with a dot).
    ///   - width, height: the image size.
    public static func render(_ curves: [(name: String, points: [(x: Double, y: Double)])], title: String, xLabel: String,
                              yLabel: String, width: Int = 900, height: Int = 560) -> Image {
        let series = curves.enumerated().map { i, curve in
            PlotSeries(name: curve.name, points: curve.points, color: PlotColor.palette[i % PlotColor.palette.count], markers: true)
        }
        var canvas = Canvas(width: width, height: height)
        LinePlot(title: title, xLabel: xLabel, yLabel: yLabel, series: series).draw(on: &canvas, x: 0, y: 0, width: width, height: height)
        return canvas.image
    }
}
