// What a run may spend: a wall-clock limit or a number of training images, with the cosine schedule laid over it.

import Foundation

/// A training budget (`--budget`, `train.budget`), replacing `train.iterations`.
///
/// Grammar (case-insensitive, no spaces inside the number):
/// - wall clock: a positive number and a unit, `90s`, `30m`, `2h`, `1.5h` (`s`, `sec`, `m`, `min`, `h`, `hr`);
/// - images: a positive integer, an optional `k` (×1000), then `img`, `image` or `images`: `50000img`, `50kimg`.
///
/// A wall-clock budget counts training time only (forward, backward, optimizer step, batch loading; not
/// validation or checkpoint writing), summed across resumes. The learning rate follows the cosine over the fraction
/// of the budget spent, reaching `min_lr` at the budget, where the run stops. An image budget is the number of
/// steps `ceil(images / batch_size)`, with the step cosine over it.
public enum TrainingBudget: Codable, Equatable, Sendable, CustomStringConvertible {
    /// Training seconds.
    case seconds(Double)
    /// Training images (crops).
    case images(Int)

    /// Parses the grammar above.
    ///
    /// - Throws: `RunConfigurationError` naming the text.
    public init(parsing text: String) throws {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        let digits = t.prefix { $0.isNumber || $0 == "." }
        let unit = String(t.dropFirst(digits.count))
        let bad = RunConfigurationError("train.budget '\(text)': expected a wall-clock time (90s, 30m, 2h) or an image count (50000img, 50kimg)")
        guard let value = Double(digits), value > 0, value.isFinite else { throw bad }
        switch unit {
        case "s", "sec", "secs": self = .seconds(value)
        case "m", "min", "mins": self = .seconds(value * 60)
        case "h", "hr", "hrs": self = .seconds(value * 3600)
        case "img", "image", "images", "kimg", "kimage", "kimages":
            let count = unit.hasPrefix("k") ? value * 1000 : value
            guard count.rounded() == count, count >= 1, count < 1e15 else { throw bad }
            self = .images(Int(count))
        default: throw bad
        }
    }

    /// The canonical text (`5400s`, `50000img`) that `init(parsing:)` reads back.
    public var description: String {
        switch self {
        case .seconds(let s): return s.rounded() == s ? "\(Int(s))s" : "\(s)s"
        case .images(let n): return "\(n)img"
        }
    }

    /// The optimizer steps of an image budget at `batchSize`; `nil` for a wall-clock budget.
    public func iterations(batchSize: Int) -> Int? {
        if case .images(let n) = self { return (n + batchSize - 1) / max(1, batchSize) }
        return nil
    }

    /// The cosine learning rate after `fraction` (0…1) of a budget: `etaMin + (base − etaMin)·(1 + cos(π·f))/2`.
    public static func cosineLR(base: Float, etaMin: Float, fraction: Double) -> Float {
        let f = min(max(fraction, 0), 1)
        return Float(Double(etaMin) + (Double(base) - Double(etaMin)) * (1 + cos(Double.pi * f)) / 2)
    }
}
