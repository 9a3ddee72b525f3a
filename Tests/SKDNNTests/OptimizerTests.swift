import Foundation
import SKDNN
import SKDTensor
import SKDTestSupport
import XCTest

final class OptimizerTests: XCTestCase {
    private let grads: [[Float]] = [[0.1, -0.2, 0.0], [-0.5, 0.4, 0.3], [1.0, 1.0, -1.0]]

    /// Expected values computed independently in Python (float64) from the textbook form
    /// m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ), p ← p − lr·m̂/(√v̂ + eps), lr 0.1, β (0.9, 0.999), eps 1e-8,
    /// p₀ = [1, −2, 0.5], gradients `grads`, the L2 term wd·p added to the gradient.
    private let expected: [Float: (params: [[Float]], m: [Float], v: [Float])] = [
        0.0: ([[0.90000001, -1.9, 0.5],
               [0.959835427, -1.93661036, 0.425586321],
               [0.923921345, -2.00647923, 0.470254854]],
              [0.0631, 0.1198, -0.073], [0.00125973001, 0.00119976004, 0.00108991]),
        0.1: ([[0.900000005, -1.9, 0.40000002],
               [0.937522035, -1.87528317, 0.316633215],
               [0.889717365, -1.92184682, 0.355295669]],
              [0.0886752204, 0.0677471683, -0.0621836677], [0.00140414582, 0.000863846296, 0.00105565533]),
    ]

    func testAdamMatchesHandComputedSteps() throws {
        for weightDecay: Float in [0, 0.1] {
            let p = Tensor(shape: [3], values: [1, -2, 0.5])
            p.requiresGrad = true
            let untouched = Tensor(shape: [2], values: [5, 6])  // never gets a gradient
            untouched.requiresGrad = true
            let adam = Adam(parameters: [p, untouched], lr: 0.1, weightDecay: weightDecay)
            let reference = expected[weightDecay]!
            for (step, g) in grads.enumerated() {
                p.grad = Tensor(shape: [3], values: g)
                adam.step()
                for (a, b) in zip(p.values, reference.params[step]) {
                    XCTAssertEqual(a, b, accuracy: 3e-7, "wd \(weightDecay), step \(step + 1): \(p.values)")
                }
            }
            XCTAssertEqual(untouched.values, [5, 6])
            XCTAssertEqual(adam.stepCount, 3)

            let state = adam.stateTensors()
            XCTAssertEqual(Set(state.keys), ["step_count", "exp_avg.0", "exp_avg_sq.0", "step.0"])
            XCTAssertEqual(state["step.0"]?.item, 3)
            XCTAssertEqual(state["step_count"]?.item, 3)
            for (a, b) in zip(state["exp_avg.0"]!.values, reference.m) { XCTAssertEqual(a, b, accuracy: 2e-8) }
            for (a, b) in zip(state["exp_avg_sq.0"]!.values, reference.v) { XCTAssertEqual(a, b, accuracy: 5e-10) }

            adam.zeroGrad()
            XCTAssertNil(p.grad)
            // Without gradients a step changes nothing.
            let before = p.values
            adam.step()
            XCTAssertEqual(p.values, before)
        }
    }

    func testAdamStateRoundTripResumesIdentically() throws {
        func run(resumeAfter split: Int?) throws -> [Float] {
            let p = Tensor(shape: [3], values: [1, -2, 0.5])
            p.requiresGrad = true
            var adam = Adam(parameters: [p], lr: 0.1)
            for (step, g) in grads.enumerated() {
                if step == split {
                    let state = adam.stateTensors()
                    adam = Adam(parameters: [p], lr: 0.1)
                    try adam.loadState(state)
                    XCTAssertEqual(adam.stepCount, split)
                }
                p.grad = Tensor(shape: [3], values: g)
                adam.step()
            }
            return p.values
        }
        let straight = try run(resumeAfter: nil)
        XCTAssertEqual(try run(resumeAfter: 1), straight)
        XCTAssertEqual(try run(resumeAfter: 2), straight)
    }

    func testAdamLoadStateRejectsBadState() {
        let p = Tensor(zeros: [3])
        let adam = Adam(parameters: [p])
        let good: [String: Tensor] = ["exp_avg.0": Tensor(zeros: [3]), "exp_avg_sq.0": Tensor(zeros: [3]), "step.0": Tensor(2)]
        XCTAssertNoThrow(try adam.loadState(good))
        var wrongShape = good
        wrongShape["exp_avg.0"] = Tensor(zeros: [4])
        var partial = good
        partial["step.0"] = nil
        var outOfRange = good
        outOfRange["exp_avg.1"] = Tensor(zeros: [3])
        var unknown = good
        unknown["momentum.0"] = Tensor(zeros: [3])
        var fractional = good
        fractional["step.0"] = Tensor(1.5)
        for (state, cause) in [(wrongShape, "exp_avg.0"), (partial, "step.0"), (outOfRange, "exp_avg.1"),
                               (unknown, "momentum.0"), (fractional, "step.0")] {
            XCTAssertThrowsError(try adam.loadState(state)) { error in
                XCTAssertTrue("\(error)".contains(cause), "\(error)")
            }
        }
    }

    func testAdamTrainsLinearRegression() {
        // y = 3x₀ − 2x₁ + 1; Adam must fit it through the Linear module and backward.
        ParameterInit.seed(7)
        let layer = Linear(2, 1)
        let x = randomTensor([64, 2], seed: 21)
        let y = Tensor.linear(x, weight: Tensor(shape: [1, 2], values: [3, -2]), bias: Tensor(shape: [1], values: [1]))
        let adam = Adam(parameters: layer.trainableParameters(), lr: 0.05)
        var loss: Float = .infinity
        for _ in 0..<600 {
            adam.zeroGrad()
            let l = (layer(x) - y).square().mean()
            loss = l.item
            l.backward()
            adam.step()
        }
        XCTAssertLessThan(loss, 1e-6)
        XCTAssertEqual(layer.weight.values[0], 3, accuracy: 1e-3)
        XCTAssertEqual(layer.weight.values[1], -2, accuracy: 1e-3)
        XCTAssertEqual(layer.bias!.item, 1, accuracy: 1e-3)
    }

    func testCosineAnnealing() {
        // Expected values from η_min + (η_base − η_min)(1 + cos(π t/T))/2 in Python, T = 100.
        let schedule = CosineAnnealingLR(baseLR: 0.01, tMax: 100, etaMin: 1e-4)
        XCTAssertEqual(schedule.lr(at: 0), 0.01, accuracy: 1e-9)
        XCTAssertEqual(schedule.lr(at: 50), 0.00505, accuracy: 1e-9)
        XCTAssertEqual(schedule.lr(at: 100), 0.0001, accuracy: 1e-9)
        XCTAssertEqual(schedule.lr(at: 37), 0.007015882059, accuracy: 1e-9)
        XCTAssertEqual(schedule.lr(at: 130), 0.002140463001, accuracy: 1e-9)
        let zeroFloor = CosineAnnealingLR(baseLR: 2e-4, tMax: 4)
        XCTAssertEqual(zeroFloor.lr(at: 4), 0, accuracy: 1e-12)
        XCTAssertEqual(zeroFloor.lr(at: 1), 1.7071067811865477e-4, accuracy: 1e-10)
    }
}
