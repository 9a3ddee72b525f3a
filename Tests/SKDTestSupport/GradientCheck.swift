// The central finite-difference gradient check every differentiable op is tested with.

import SKDTensor
import XCTest

/// Options of one finite-difference check.
public struct GradCheckOptions {
    /// The central-difference step.
    public var eps: Float = 1e-2
    /// Allowed `|analytic − numeric| ≤ atol + rtol·|numeric|` per element.
    public var rtol: Float = 2e-2
    public var atol: Float = 2e-3
    /// At most this many elements per input are perturbed (chosen evenly), keeping big checks fast.
    public var maxElements = 64
    public init(eps: Float = 1e-2, rtol: Float = 2e-2, atol: Float = 2e-3, maxElements: Int = 64) {
        self.eps = eps; self.rtol = rtol; self.atol = atol; self.maxElements = maxElements
    }
}

/// Checks the gradients `f` back-propagates into each of `inputs` against central differences.
///
/// The scalar objective is `Σ f(inputs) · probe` with a fixed random `probe`, so every output element gets a
/// different weight (a plain sum would hide errors that cancel). The objective is evaluated in Double from
/// the float32 outputs.
public func checkGradients(
    _ name: String, inputs: [Tensor], options: GradCheckOptions = GradCheckOptions(),
    file: StaticString = #filePath, line: UInt = #line,
    _ f: ([Tensor]) -> Tensor
) {
    var rng = SKDRandom(seed: 0x5EED)
    for x in inputs { x.requiresGrad = true; x.zeroGrad() }
    let out = f(inputs)
    let probe = Tensor.uniform(out.shape, low: -1, high: 1, using: &rng)
    (out * probe).sum().backward()

    func objective() -> Double {
        let y = noGrad { f(inputs) }
        var acc = 0.0
        for i in 0..<y.count { acc += Double(y.pointer[i]) * Double(probe.pointer[i]) }
        return acc
    }

    for (index, x) in inputs.enumerated() {
        guard let grad = x.grad else {
            XCTFail("\(name): input \(index) \(x.shape) received no gradient", file: file, line: line)
            continue
        }
        XCTAssertEqual(grad.shape, x.shape, "\(name): gradient shape of input \(index)", file: file, line: line)
        let step = max(1, x.count / options.maxElements)
        var worst: (Float, Int, Float, Float) = (0, -1, 0, 0)
        for i in stride(from: 0, to: x.count, by: step) {
            let saved = x.pointer[i]
            x.pointer[i] = saved + options.eps
            let plus = objective()
            x.pointer[i] = saved - options.eps
            let minus = objective()
            x.pointer[i] = saved
            let numeric = Float((plus - minus) / (2 * Double(options.eps)))
            let analytic = grad.pointer[i]
            let excess = abs(analytic - numeric) - (options.atol + options.rtol * abs(numeric))
            if excess > worst.0 { worst = (excess, i, analytic, numeric) }
        }
        if worst.1 >= 0 {
            XCTFail("\(name): input \(index) \(x.shape), element \(worst.1): analytic \(worst.2) vs numeric \(worst.3)",
                    file: file, line: line)
        }
    }
}

/// Relative error `‖a − b‖ / ‖b‖`, in Double.
public func relativeError(_ a: Tensor, _ b: Tensor) -> Double { a.relativeError(to: b) }

/// A seeded random tensor, for tests.
public func randomTensor(_ shape: [Int], seed: UInt64, low: Float = -1, high: Float = 1) -> Tensor {
    var rng = SKDRandom(seed: seed)
    return Tensor.uniform(shape, low: low, high: high, using: &rng)
}
