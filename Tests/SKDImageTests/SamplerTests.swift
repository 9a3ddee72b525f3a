import Foundation
import SKDImage
import SKDTensor
import XCTest

/// An in-memory dataset: pair i's target is a fixed pattern that encodes i in its first sample, its input the
/// negative of the target, so a batch shows whether input and target got the same crop and transform.
private struct PatternSource: PairedImageSource {
    var count: Int
    var failing: Int? = nil

    struct Failure: Error {}

    func name(at index: Int) -> String { "pattern-\(index)" }

    func target(_ index: Int, size: Int) -> Image {
        var bytes = [UInt8](repeating: 0, count: size * size * 3)
        for y in 0..<size { for x in 0..<size { for c in 0..<3 { bytes[(y * size + x) * 3 + c] = UInt8((x * 3 + y * 37 + c * 11) % 200 + 20) } } }
        bytes[0] = UInt8(index)
        return Image(width: size, height: size, channels: 3, bytes: bytes)
    }

    func pair(at index: Int, using rng: inout SKDRandom) throws -> ImagePair { try patch(at: index, size: 8, using: &rng) }

    func patch(at index: Int, size: Int, using rng: inout SKDRandom) throws -> ImagePair {
        if index == failing { throw Failure() }
        _ = rng.next()  // stands for a random crop position
        let t = target(index, size: size)
        return ImagePair(name: name(at: index), input: Image(width: size, height: size, channels: 3, bytes: t.bytes.map { 255 - $0 }), target: t)
    }
}

final class SamplerTests: XCTestCase {
    /// The 8 flips/rotations of a square `[3, P, P]` array, as row-major arrays.
    private func symmetries(of image: Image) -> [[Float]] {
        let p = image.width
        let base = image.tensor(range: .zeroToOne).values
        var out = [[Float]]()
        for transpose in [false, true] {
            for flipRows in [false, true] {
                for flipColumns in [false, true] {
                    var v = [Float](repeating: 0, count: base.count)
                    for c in 0..<3 {
                        for y in 0..<p {
                            for x in 0..<p {
                                var a = transpose ? x : y, b = transpose ? y : x
                                if flipRows { a = p - 1 - a }
                                if flipColumns { b = p - 1 - b }
                                v[(c * p + y) * p + x] = base[(c * p + a) * p + b]
                            }
                        }
                    }
                    out.append(v)
                }
            }
        }
        return out
    }

    func testBatchesPairInputAndTargetUnderAllEightSymmetries() throws {
        let source = PatternSource(count: 5)
        let sampler = TrainingSampler(source: source, batchSize: 4, patchSize: 6, seed: 3, range: .zeroToOne)
        defer { sampler.stop() }
        var seen = Set<Int>()
        for _ in 0..<20 {
            let batch = try sampler.next()
            XCTAssertEqual(batch.input.shape, [4, 3, 6, 6])
            let item = 3 * 6 * 6
            for j in 0..<4 {
                let input = Array(batch.input.values[(j * item)..<((j + 1) * item)])
                let target = Array(batch.target.values[(j * item)..<((j + 1) * item)])
                // Same transform on both: input = 1 − target everywhere.
                for (a, b) in zip(input, target) { XCTAssertEqual(a + b, 1, accuracy: 1e-6) }
                let index = Int(batch.names[j].split(separator: "-").last!)!
                let candidates = symmetries(of: source.target(index, size: 6))
                guard let which = candidates.firstIndex(where: { zip($0, target).allSatisfy { abs($0 - $1) < 1e-6 } }) else {
                    return XCTFail("batch \(batch.index) item \(j) is not a flip/rotation of its source")
                }
                seen.insert(which)
            }
        }
        XCTAssertEqual(seen.count, 8, "all 8 symmetries occur")
    }

    func testEpochsVisitEveryPairOnceInASeededOrder() throws {
        let sampler = TrainingSampler(source: PatternSource(count: 10), batchSize: 5, patchSize: 4, seed: 11, augment: false)
        defer { sampler.stop() }
        var epochs = [[String]]()
        for _ in 0..<2 {
            epochs.append(try sampler.next().names + sampler.next().names)
        }
        for names in epochs { XCTAssertEqual(Set(names).count, 10) }
        XCTAssertNotEqual(epochs[0], epochs[1], "each epoch is reshuffled")
        XCTAssertEqual(sampler.recipe.order(epoch: 0).map { "pattern-\($0)" }, epochs[0])

        let ordered = TrainingSampler(source: PatternSource(count: 3), batchSize: 2, patchSize: 4, seed: 1, augment: false, shuffle: false)
        defer { ordered.stop() }
        XCTAssertEqual(try ordered.next().names + ordered.next().names, ["pattern-0", "pattern-1", "pattern-2", "pattern-0"])
    }

    func testSameSeedSameBatchesAcrossWorkersAndResume() throws {
        let root = try referenceFile("data/cbsd68")
        let data = try CleanDataset(folder: root, degradation: DegradationChain([MotionBlur(), GaussianNoise(sigma: 0...50)]))
        func take(_ sampler: TrainingSampler, _ n: Int) throws -> [[Float]] {
            try (0..<n).map { _ in let b = try sampler.next(); return b.input.values + b.target.values }
        }
        let a = TrainingSampler(source: data, batchSize: 2, patchSize: 48, seed: 5, prefetch: 2, workers: 1)
        let first = try take(a, 3)
        let state = a.state
        XCTAssertEqual(state, TrainingSampler.State(seed: 5, nextBatch: 3))
        let fourth = try take(a, 1)
        a.stop()

        let b = TrainingSampler(source: data, batchSize: 2, patchSize: 48, seed: 5, prefetch: 3, workers: 2)
        XCTAssertEqual(try take(b, 4), first + fourth, "the worker count does not change the batches")
        b.stop()

        let encoded = try JSONEncoder().encode(state)
        let resumed = TrainingSampler(source: data, batchSize: 2, patchSize: 48, seed: 999,
                                      resume: try JSONDecoder().decode(TrainingSampler.State.self, from: encoded))
        XCTAssertEqual(try take(resumed, 1), fourth, "a resumed sampler continues the sequence")
        resumed.stop()

        let other = TrainingSampler(source: data, batchSize: 2, patchSize: 48, seed: 6)
        XCTAssertNotEqual(try take(other, 1)[0], first[0])
        other.stop()
    }

    func testAFailingSampleSurfacesAsAnErrorAndTheSamplerMovesOn() throws {
        let sampler = TrainingSampler(source: PatternSource(count: 4, failing: 2), batchSize: 2, patchSize: 4, seed: 1,
                                      shuffle: false, prefetch: 2, workers: 2)
        defer { sampler.stop() }
        XCTAssertEqual(try sampler.next().names, ["pattern-0", "pattern-1"])
        XCTAssertThrowsError(try sampler.next())
        XCTAssertEqual(try sampler.next().names, ["pattern-0", "pattern-1"])
        XCTAssertEqual(sampler.state.nextBatch, 3)
    }

    func testPrefetchFillsABoundedQueueAheadOfTheConsumer() throws {
        let root = try referenceFile("data/cbsd68")
        let data = try CleanDataset(folder: root, degradation: GaussianNoise(sigma: 15))
        let sampler = TrainingSampler(source: data, batchSize: 4, patchSize: 64, seed: 1, prefetch: 3, workers: 2)
        defer { sampler.stop() }
        _ = try sampler.next()
        // Without a consumer the workers fill the queue up to `prefetch` and stop there.
        let deadline = Date().addingTimeInterval(60)
        while sampler.readyBatches < 3 && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        XCTAssertEqual(sampler.readyBatches, 3)
        Thread.sleep(forTimeInterval: 0.2)
        XCTAssertEqual(sampler.readyBatches, 3, "the queue is bounded")
        let start = Date()
        for _ in 0..<3 { _ = try sampler.next() }
        print(String(format: "3 prefetched batches taken in %.2f ms", Date().timeIntervalSince(start) * 1000))
        XCTAssertEqual(sampler.state.nextBatch, 4)
    }
}
