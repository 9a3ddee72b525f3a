import Foundation
import SKDModels
import SKDTensor
import SKDTestSupport
import XCTest

/// The library-level reference check (what `skd reference-check` runs) accepts every model reference file.
final class ModelReferenceCheckTests: XCTestCase {
    private func check(_ name: String) throws {
        guard let url = try referenceFile("golden/\(name).safetensors") else { return }
        let file = try SafeTensors.read(url)
        XCTAssertTrue(ModelReferenceCheck.isModelFile(file))
        let results = try ModelReferenceCheck.run(file, name: name)
        let referenceCount = file.tensors.keys.filter { $0 == "output" || $0.hasPrefix("tap.") || $0.hasPrefix("grad.") }.count
        let recomputed = results.filter { $0.name != "output (no grad)" }.count
        XCTAssertEqual(recomputed, referenceCount, "\(name): every reference tensor is compared")
        for r in results { print(String(format: "  %@ %-56@ rel. error %.3e", name, r.name, r.relativeError)) }
        let worst = results.max { $0.relativeError < $1.relativeError }!
        print(String(format: "%@: %d tensors, worst %@ at %.3e", name, results.count, worst.name, worst.relativeError))
        for r in results where !r.passed { XCTFail("\(name): \(r.name) relative error \(r.relativeError)") }
    }

    func testRestormer() throws { try check("restormer_tiny") }
    func testRestormerBiasFree() throws { try check("restormer_tiny_biasfree") }
    func testUformer() throws { try check("uformer_tiny") }
    func testDRSformer() throws { try check("drsformer_tiny") }
    func testVGG19Features() throws { try check("vgg19_features") }

    /// A perturbed parameter makes the check fail: it cannot pass vacuously.
    func testDetectsAWrongParameter() throws {
        guard let url = try referenceFile("golden/restormer_tiny.safetensors") else { return }
        var file = try SafeTensors.read(url)
        let weight = file.tensors["output.weight"]!.copy()
        weight.pointer[0] += 0.5
        file.tensors["output.weight"] = weight
        let results = try ModelReferenceCheck.run(file, name: "perturbed")
        XCTAssertFalse(results.first { $0.name == "output" }!.passed)
    }
}

/// Presets and JSON descriptions round-trip through `ModelSpec`.
final class ModelSpecTests: XCTestCase {
    func testPresetsBuildAndRoundTrip() throws {
        XCTAssertEqual(Set(ModelSpec.presetNames), ["restormer", "restormer-s", "uformer-b", "uformer-s", "drsformer", "drsformer-s"])
        for name in ModelSpec.presetNames {
            let spec = try ModelSpec.preset(name)
            XCTAssertEqual(try ModelSpec(json: spec.jsonString()), spec, name)
        }
        XCTAssertThrowsError(try ModelSpec.preset("restormer-xl")) { XCTAssertTrue("\($0)".contains("restormer-xl")) }
        XCTAssertThrowsError(try ModelSpec(json: #"{"arch": "swinir"}"#)) { XCTAssertTrue("\($0)".contains("swinir")) }
    }

    func testPresetWithOverrides() throws {
        let spec = try ModelSpec(dictionary: ["preset": "restormer-s", "dim": 8, "num_blocks": [1, 1, 1, 1]])
        guard case .restormer(let config) = spec else { return XCTFail("not a restormer: \(spec)") }
        XCTAssertEqual(config.dim, 8)
        XCTAssertEqual(config.numBlocks, [1, 1, 1, 1])
        XCTAssertEqual(config.numRefinementBlocks, 1, "kept from the preset")
        let model = spec.makeModel()
        XCTAssertGreaterThan(model.parameterCount, 0)
        XCTAssertEqual(model.sizeMultiple, 8)
    }
}
