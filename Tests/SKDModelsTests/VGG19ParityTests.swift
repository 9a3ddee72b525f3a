// VGG-19 features against torchvision (`vgg19().features[:12]`, golden file), the torchvision layout, and the
// ImageNet normalisation helper.

import Foundation
import SKDModels
import SKDNN
import SKDTensor
import SKDTestSupport
import XCTest

final class VGG19ParityTests: XCTestCase {
    /// The torchvision layout: names, truncation, and the parameter count of the full feature stack.
    func testLayout() {
        let full = VGG19Features(through: "relu5_1")
        XCTAssertEqual(full.features.count, 30)
        XCTAssertEqual(full.tapNames, ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"])
        let names = full.namedParameters().map(\.0)
        XCTAssertEqual(names.filter { $0.hasSuffix(".weight") }.count, 13)
        for index in [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28] {
            XCTAssertTrue(names.contains("features.\(index).weight") && names.contains("features.\(index).bias"), "features.\(index)")
        }
        // torchvision vgg19().features[:30]: 13 convolutions, Σ (9·Cin·Cout + Cout).
        XCTAssertEqual(full.parameterCount, 12_944_960)
        let shallow = VGG19Features(through: "relu2_1")
        XCTAssertEqual(shallow.features.count, 7)
        let y = noGrad { shallow(randomTensor([1, 3, 10, 14], seed: 1)) }
        XCTAssertEqual(y.shape, [1, 128, 5, 7])
    }

    /// `((x + 1)/2 − mean)/std` per channel, differentiable.
    func testImageNetNormalisation() {
        let x = randomTensor([2, 3, 4, 5], seed: 7)
        let y = VGG19Features.imageNetNormalized(x)
        let mean: [Float] = [0.485, 0.456, 0.406], std: [Float] = [0.229, 0.224, 0.225]
        for n in 0..<2 { for c in 0..<3 { for p in 0..<20 {
            let i = (n * 3 + c) * 20 + p
            XCTAssertEqual(y.pointer[i], ((x.pointer[i] + 1) / 2 - mean[c]) / std[c], accuracy: 1e-5)
        } } }
        checkGradients("imageNetNormalized", inputs: [x]) { VGG19Features.imageNetNormalized($0[0]) }
    }
}
