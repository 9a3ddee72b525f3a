import Foundation
import SKDDistill
import SKDImage
import SKDModels
import SKDNN
import SKDTensor
import SKDTestSupport
import XCTest

/// Pairs of `SyntheticPairs` whose listed indices cannot be read.
struct PartlyUnreadablePairs: PairedImageSource {
    var unreadable: Set<Int>
    var count: Int { 6 }
    func name(at index: Int) -> String { SyntheticPairs().name(at: index) }
    func pair(at index: Int, using rng: inout SKDRandom) throws -> ImagePair {
        if unreadable.contains(index) { throw CocoaError(.fileReadCorruptFile) }
        return try SyntheticPairs().pair(at: index, using: &rng)
    }
    func patch(at index: Int, size: Int, using rng: inout SKDRandom) throws -> ImagePair {
        try SyntheticPairs().patch(at: index, size: size, using: &rng)
    }
}

/// The shared evaluation loop (`RestorationEvaluation`), against the metrics computed image by image.
final class EvaluationTests: XCTestCase {
    /// The means of `Metrics` over `Inference.restore` of each pair, computed here without the loop.
    private func reference(_ model: any TappedModel, _ source: any PairedImageSource, indices: [Int], seed: UInt64) throws -> QualityScores {
        let iterator = ValidationIterator(source: source, range: .minusOneToOne, seed: seed)
        var sums = [0.0, 0, 0, 0]
        for index in indices {
            let sample = try iterator.sample(at: index)
            let image = Image(tensor: Inference.restore(model, sample.input), range: .minusOneToOne)
            sums[0] += Metrics.psnr(image, sample.targetImage); sums[1] += Metrics.ssim(image, sample.targetImage)
            sums[2] += Metrics.psnr(image, sample.targetImage, space: .y); sums[3] += Metrics.ssim(image, sample.targetImage, space: .y)
        }
        let n = Double(indices.count)
        return QualityScores(psnr: sums[0] / n, ssim: sums[1] / n, psnrY: sums[2] / n, ssimY: sums[3] / n)
    }

    private func assertClose(_ a: QualityScores, _ b: QualityScores, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.psnr, b.psnr, accuracy: 1e-9, file: file, line: line)
        XCTAssertEqual(a.ssim, b.ssim, accuracy: 1e-9, file: file, line: line)
        XCTAssertEqual(a.psnrY, b.psnrY, accuracy: 1e-9, file: file, line: line)
        XCTAssertEqual(a.ssimY, b.ssimY, accuracy: 1e-9, file: file, line: line)
    }

    func testMeansAreThoseOfEveryImageAndEveryModel() throws {
        ParameterInit.seed(3)
        let a = TinyTappedModel(width: 3), b = TinyTappedModel(width: 4)
        var options = EvaluationOptions()
        options.seed = 5
        options.scoreInput = true
        options.timed = true
        var restored: [(Int, Int)] = [], finished: [Int] = []
        let result = try XCTUnwrap(RestorationEvaluation.run([a, b], on: SyntheticPairs(), options: options,
                                                             restored: { restored.append(($0.index, $0.model)) },
                                                             finished: { done, count, _ in XCTAssertEqual(count, 6); finished.append(done) }))
        XCTAssertEqual(result.images, 6)
        XCTAssertEqual(result.skipped, [])
        assertClose(result.models[0], try reference(a, SyntheticPairs(), indices: Array(0..<6), seed: 5))
        assertClose(result.models[1], try reference(b, SyntheticPairs(), indices: Array(0..<6), seed: 5))
        XCTAssertNotEqual(result.models[0].psnr, result.models[1].psnr)
        XCTAssertEqual(restored.map(\.0), [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5])
        XCTAssertEqual(restored.map(\.1), [0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1])
        XCTAssertEqual(finished, [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(result.millisecondsPerImage?.count, 2)
        XCTAssertTrue(result.millisecondsPerImage!.allSatisfy { $0 > 0 })

        // The degraded input's own scores, and another seed gives other noise.
        let input = try XCTUnwrap(result.input)
        XCTAssertLessThan(input.psnr, 30)
        let other = try XCTUnwrap(RestorationEvaluation.run([a], on: SyntheticPairs(), options: { var o = EvaluationOptions(); o.seed = 6; return o }()))
        XCTAssertNotEqual(other.models[0].psnr, result.models[0].psnr)
        XCTAssertNil(other.input)
        XCTAssertNil(other.millisecondsPerImage)
    }

    func testUnreadableImagesAreSkippedAndMaxImagesCounts() throws {
        ParameterInit.seed(4)
        let model = TinyTappedModel(width: 3)
        var options = EvaluationOptions()
        options.maxImages = 4
        var warned: [String] = []
        let result = try XCTUnwrap(RestorationEvaluation.run([model], on: PartlyUnreadablePairs(unreadable: [1, 5]), options: options,
                                                             skipped: { name, _ in warned.append(name) }))
        XCTAssertEqual(result.images, 3)
        XCTAssertEqual(result.skipped, ["synthetic-1"])
        XCTAssertEqual(warned, ["synthetic-1"])
        assertClose(result.models[0], try reference(model, SyntheticPairs(), indices: [0, 2, 3], seed: 0))

        let none = try RestorationEvaluation.run([model], on: PartlyUnreadablePairs(unreadable: Set(0..<6)))
        XCTAssertNil(none)
    }
}
