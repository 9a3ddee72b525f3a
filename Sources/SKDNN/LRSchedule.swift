// Learning-rate schedules as pure functions of the step, so a resumed run needs only the step number.

import Foundation

/// Cosine annealing from `baseLR` to `etaMin` over `tMax` steps: the closed form of PyTorch's
/// `CosineAnnealingLR`, η(t) = η_min + (η_base − η_min)·(1 + cos(π·t/T_max))/2.
///
/// Past `tMax` the formula continues (the rate rises again along the cosine), as PyTorch's closed form does;
/// stop training at `tMax` or clamp the step for a flat tail.
public struct CosineAnnealingLR {
    /// The rate at step 0.
    public var baseLR: Float
    /// The number of steps of one half cosine period (the rate reaches `etaMin` at t = tMax).
    public var tMax: Int
    /// The minimum rate.
    public var etaMin: Float

    /// A schedule from `baseLR` down to `etaMin` over `tMax` (> 0) steps.
    public init(baseLR: Float, tMax: Int, etaMin: Float = 0) {
        precondition(tMax > 0, "CosineAnnealingLR: tMax must be positive, got \(tMax)")
        self.baseLR = baseLR
        self.tMax = tMax
        self.etaMin = etaMin
    }

    /// The learning rate at step `step` (≥ 0), computed in Double.
    public func lr(at step: Int) -> Float {
        precondition(step >= 0, "CosineAnnealingLR: negative step \(step)")
        let progress = Double(step) / Double(tMax)
        return Float(Double(etaMin) + (Double(baseLR) - Double(etaMin)) * (1 + cos(Double.pi * progress)) / 2)
    }
}
