import SKDModels
import SKDNN
import SKDTensor
import SKDTestSupport
import XCTest

/// A small fully convolutional model with a receptive field of 5×5 and a size multiple of 4.
private final class TinyConvModel: Module, TappedModel {
    let conv1 = Conv2d(3, 6, kernelSize: 3, padding: 1)
    let conv2 = Conv2d(6, 3, kernelSize: 3, padding: 1)
    var tapNames: [String] { ["conv1"] }
    var sizeMultiple: Int { 4 }
    func forward(_ x: Tensor, taps: FeatureTaps?) -> Tensor {
        precondition(x.shape[2] % 4 == 0 && x.shape[3] % 4 == 0, "TinyConvModel needs multiples of 4, got \(x.shape)")
        let h = taps?.record("conv1", conv1(x).gelu()) ?? conv1(x).gelu()
        return conv2(h) + x
    }
}

final class InferenceTests: XCTestCase {
    func testPaddingToTheModelMultipleCropsBack() {
        ParameterInit.seed(1)
        let model = TinyConvModel()
        let x = randomTensor([1, 3, 13, 10], seed: 2)
        let y = Inference.restore(model, x)
        XCTAssertEqual(y.shape, [1, 3, 13, 10])
        // Away from the padded bottom/right border the result equals a pass on a larger crop.
        let reference = model(x.cropped2d(top: 0, left: 0, height: 12, width: 8))
        XCTAssertLessThan(relativeError(y.cropped2d(top: 0, left: 0, height: 10, width: 6),
                                        reference.cropped2d(top: 0, left: 0, height: 10, width: 6)), 1e-6)
    }

    func testTiledInferenceEqualsWholeImageAwayFromSeams() {
        ParameterInit.seed(3)
        let model = TinyConvModel()
        let x = randomTensor([2, 3, 40, 36], seed: 4)
        let whole = Inference.restore(model, x)
        let tiled = Inference.restore(model, x, tile: 16, tileOverlap: 8)
        XCTAssertEqual(tiled.shape, whole.shape)
        // The receptive radius (2) is within tileOverlap/2: the tiled result is exact everywhere.
        XCTAssertLessThan(relativeError(tiled, whole), 1e-6)
        // With too small an overlap the seams show.
        XCTAssertGreaterThan(relativeError(Inference.restore(model, x, tile: 16, tileOverlap: 0), whole), 1e-4)
        // Tiles larger than the image: exactly the whole-image result.
        XCTAssertLessThan(relativeError(Inference.restore(model, x, tile: 64), whole), 1e-7)
        // No gradient history is recorded.
        XCTAssertFalse(tiled.requiresGrad)
    }
}

/// A training-mode forward pass that is abandoned (no backward) frees its whole graph, for every family.
final class ModelGraphLifetimeTests: XCTestCase {
    func testAbandonedForwardPassesAreFreed() throws {
        let specs: [[String: Any]] = [
            ["arch": "restormer", "dim": 8, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 1],
            ["arch": "drsformer", "dim": 8, "num_blocks": [1, 1, 1, 1], "mefc": true],
            ["arch": "uformer", "img_size": 32, "embed_dim": 8, "depths": [1, 1, 1, 1, 1, 1, 1, 1, 1], "win_size": 4, "modulator": true],
        ]
        for spec in specs {
            let model = try ModelSpec(dictionary: spec).makeModel()
            weak var weakOutput: Tensor?
            weak var weakTap: Tensor?
            do {
                let taps = FeatureTaps()
                let out = model.forward(randomTensor([1, 3, 32, 32], seed: 1), taps: taps)
                XCTAssertTrue(out.requiresGrad)
                weakOutput = out
                weakTap = taps.features.values.first
            }
            XCTAssertNil(weakOutput, "\(spec["arch"]!): the output of an abandoned forward pass leaked")
            XCTAssertNil(weakTap, "\(spec["arch"]!): a tap of an abandoned forward pass leaked")
        }
    }
}

/// Feature extractors end the forward pass once their taps are recorded; the taps equal a full pass's.
final class EarlyStopTests: XCTestCase {
    func testForwardStopsAfterTheLastWantedTap() throws {
        let cases: [([String: Any], String, String)] = [
            (["arch": "restormer", "dim": 8, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 1], "encoder_level2", "latent"),
            (["arch": "drsformer", "dim": 8, "num_blocks": [1, 1, 1, 1], "mefc": false], "encoder_level2", "latent"),
            (["arch": "uformer", "img_size": 32, "embed_dim": 8, "depths": [1, 1, 1, 1, 1, 1, 1, 1, 1], "win_size": 4], "encoderlayer_1", "conv"),
        ]
        for (spec, wanted, later) in cases {
            let model = try ModelSpec(dictionary: spec).makeModel()
            let x = randomTensor([1, 3, 32, 32], seed: 5)
            let full = FeatureTaps()
            _ = noGrad { model.forward(x, taps: full) }
            let early = FeatureTaps([wanted], stopsEarly: true)
            let returned = noGrad { model.forward(x, taps: early) }
            XCTAssertTrue(early.isComplete)
            XCTAssertLessThan(relativeError(try XCTUnwrap(early[wanted]), try XCTUnwrap(full[wanted])), 1e-7, "\(spec["arch"]!)")
            XCTAssertTrue(returned === early[wanted], "\(spec["arch"]!): returns the last tap")
            XCTAssertNotNil(full[later])
            // Without stopsEarly the same wanted set runs the whole network.
            let whole = FeatureTaps([wanted])
            XCTAssertFalse(whole.isComplete)
            XCTAssertEqual(noGrad { model.forward(x, taps: whole) }.shape, [1, 3, 32, 32])
        }
    }
}
