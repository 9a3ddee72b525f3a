// The grammar of synthetic degradations (`--degradation`, `datasets.*.degradation`): `noise:25`, `rain+noise:5`.

import Foundation
import SKDImage

/// The synthetic degradations by name.
///
/// Grammar: steps joined by `+`, each `noise:σ` or `noise:σ1-σ2` (Gaussian noise, σ on the 0–255 scale),
/// `rain` (synthetic streaks with the default ranges), `motion-blur` or `motion-blur:L1-L2` (length in pixels);
/// `none` means no degradation.
public enum DegradationSpec {
    /// The degradation `text` names, or `nil` for `none`.
    ///
    /// - Throws: `RunConfigurationError` naming the step it does not understand.
    public static func parse(_ text: String) throws -> (any Degradation)? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        if trimmed == "none" || trimmed.isEmpty { return nil }
        var steps: [any Degradation] = []
        for step in trimmed.split(separator: "+").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            let parts = step.split(separator: ":", maxSplits: 1).map(String.init)
            let name = parts[0], argument = parts.count > 1 ? parts[1] : nil
            func range(_ text: String) throws -> ClosedRange<Float> {
                let bounds = text.split(separator: "-", omittingEmptySubsequences: false).map { Float($0.trimmingCharacters(in: .whitespaces)) }
                guard (1...2).contains(bounds.count), bounds.allSatisfy({ $0 != nil && $0! >= 0 }),
                      bounds.first!! <= bounds.last!! else {
                    throw RunConfigurationError("degradation '\(text)': expected a number or a range like 0-50 in '\(step)'")
                }
                return bounds.first!!...bounds.last!!
            }
            switch name {
            case "noise", "gaussian", "gaussian-noise":
                guard let argument else { throw RunConfigurationError("degradation '\(step)': give σ, e.g. noise:25 or noise:0-50") }
                steps.append(GaussianNoise(sigma: try range(argument)))
            case "rain":
                guard argument == nil else { throw RunConfigurationError("degradation '\(step)': rain takes no argument") }
                steps.append(RainStreaks())
            case "motion-blur", "blur":
                let lengths = try argument.map(range) ?? 5...21
                guard lengths.lowerBound >= 1 else { throw RunConfigurationError("degradation '\(step)': blur length must be at least 1") }
                steps.append(MotionBlur(length: lengths))
            default:
                throw RunConfigurationError("unknown degradation '\(name)' in '\(text)'; known: noise:σ, rain, motion-blur[:L1-L2], none, joined with +")
            }
        }
        return steps.count == 1 ? steps[0] : DegradationChain(steps)
    }
}
