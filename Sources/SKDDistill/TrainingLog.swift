// Reading a run's log.jsonl (the JSON lines the trainer writes), for plots and reports. The drawing itself is
// SKDImage's `TrainingPlot`; this file is where the log's format is known, next to the trainer that writes it.

import Foundation
import SKDImage

/// A training run's log: one JSON object per line with `iter`, the loss terms, `lr` and `seconds`; validation lines
/// add `val_psnr` and `val_ssim`.
public enum TrainingLog {
    /// The largest magnitude of a value in a log entry (and the largest `iter`) that is accepted.
    public static let maximumValue = 1e12

    /// The log's entries, one dictionary of its numeric fields per line, in file order (a resumed run repeats
    /// iterations: later entries of an iteration supersede earlier ones when plotted).
    ///
    /// - Throws: `TrainingLogError` naming the file and line when a line is not a JSON object with `iter`, or
    ///   holds a value no run writes; the file system's error when the file cannot be read.
    public static func entries(at url: URL) throws -> [[String: Double]] {
        let text = try String(contentsOf: url, encoding: .utf8)
        var out: [[String: Double]] = []
        for (number, line) in text.split(separator: "\n").enumerated() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], object["iter"] != nil else {
                throw TrainingLogError.badLine(url, line: number + 1)
            }
            var entry: [String: Double] = [:]
            for (key, value) in object {
                guard let n = value as? NSNumber else { continue }
                let v = n.doubleValue
                // Values a run can write: iterations are counts, losses and metrics far below 1e12.
                let plausible = key == "iter" ? v.rounded() == v && (0...maximumValue).contains(v) : v.isFinite && abs(v) <= maximumValue
                guard plausible else { throw TrainingLogError.badValue(url, line: number + 1, key: key, value: v) }
                entry[key] = v
            }
            out.append(entry)
        }
        return out
    }
}

/// Problems reading a training log.
public enum TrainingLogError: Error, CustomStringConvertible {
    /// A log line is not a JSON object with an `iter` field.
    case badLine(URL, line: Int)
    /// A log entry holds a value no run writes (an `iter` that is not a count, a loss beyond ±1e12).
    case badValue(URL, line: Int, key: String, value: Double)

    /// One line naming the file and line.
    public var description: String {
        switch self {
        case let .badLine(url, line): return "\(url.path): line \(line) is not a JSON log entry with 'iter'"
        case let .badValue(url, line, key, value):
            return "\(url.path): line \(line): '\(key)' is \(value), outside what a training log holds (\(key == "iter" ? "a whole number in 0...1e12" : "a number within ±1e12"))"
        }
    }
}

extension TrainingPlot {
    /// Draws the figure of the run whose log is at `url` (`TrainingLog.entries(at:)`, then
    /// `render(entries:title:width:height:)`), 1000×760 pixels.
    ///
    /// - Throws: `TrainingLogError` naming the file and line, or the file system's error.
    public static func render(log url: URL, title: String = "training") throws -> Image {
        render(entries: try TrainingLog.entries(at: url), title: title)
    }
}
