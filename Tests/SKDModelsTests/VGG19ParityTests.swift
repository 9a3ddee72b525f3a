// VGG-19 features against torchvision (`vgg19().features[:12]`, golden file), the torchvision layout, and the
// ImageNet normalisation helper.

import Foundation
import SKDModels
import SKDNN
import SKDTensor
import SKDTestSupport
import XCTest

final class VGG19ParityTests: XCTestCase {
    private func compare(_ label: String, _ got: Tensor?, _ want: Tensor?, file: StaticString = #filePath, line: UInt = #line) {
        guard let got, let want else {
            XCTFail("\(label): missing (\(got == nil ? "ours" : "reference"))", file: file, line: line)
            return
        }
        XCTAssertEqual(got.shape, want.shape, "\(label): shape", file: file, line: line)
        guard got.count == want.count else { return }
        let error = relativeError(got, want)
        print(String(format: "  %-28@ rel. error %.3e", label as NSString, error))
        XCTAssertLessThanOrEqual(error, 1e-4, "\(label): relative error \(error)", file: file, line: line)
    }

    /// Taps and gradients of `sum_l sum(tap_l · probe_l)` match torchvision.
    func testParity() throws {
        guard let url = try referenceFile("golden/vgg19_features.safetensors") else { return }
        let file = try SafeTensors.read(url)
        let configJSON = try XCTUnwrap(file.metadata["config"], "no config in metadata")
        let config = try JSONDecoder().decode(VGG19FeaturesConfig.self, from: Data(configJSON.utf8))
        let model = VGG19Features(config: config)
        XCTAssertEqual(model.features.count, 12, "vgg19().features[:12]")
        try model.load(file.tensors.filter { $0.key.hasPrefix("features.") }, strict: true)
        model.eval()

        let input = try XCTUnwrap(file.tensors["input"])
        input.requiresGrad = true
        let taps = FeatureTaps()
        _ = model.forward(input, taps: taps)
        XCTAssertEqual(taps.order, ["relu1_1", "relu2_1", "relu3_1"])
        var loss: Tensor? = nil
        print("vgg19_features:")
        for name in model.tapNames {
            compare("tap.\(name)", taps[name], file.tensors["tap.\(name)"])
            guard let tap = taps[name], let probe = file.tensors["probe.\(name)"] else {
                XCTFail("no tap or probe for \(name)")
                continue
            }
            let term = (tap * probe).sum()
            loss = loss.map { $0 + term } ?? term
        }
        try XCTUnwrap(loss).backward()
        compare("grad.input", input.grad, file.tensors["grad.input"])
        var compared = 0
        for (name, parameter) in model.namedParameters() {
            compare("grad.\(name)", parameter.grad, file.tensors["grad.\(name)"])
            compared += 1
        }
        XCTAssertEqual(compared, file.tensors.keys.filter { $0.hasPrefix("grad.features.") }.count)
    }

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
