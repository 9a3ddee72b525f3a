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
