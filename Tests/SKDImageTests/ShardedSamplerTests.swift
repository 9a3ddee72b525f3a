// The data-parallel share of a batch (Docs/distributed.md): K samplers with `shard` (r, K) yield, side by side,
// exactly the batches of one sampler, for any K dividing the batch and from any resume point.

import Foundation
import SKDImage
import SKDTensor
import XCTest

/// Pairs whose pixels depend on the sample's generator, so a sample drawn with another seed looks different.
private struct RandomPatchSource: PairedImageSource {
    var count: Int
    func name(at index: Int) -> String { "random-\(index)" }
    func pair(at index: Int, using rng: inout SKDRandom) throws -> ImagePair { try patch(at: index, size: 8, using: &rng) }
    func patch(at index: Int, size: Int, using rng: inout SKDRandom) throws -> ImagePair {
        let target = (0..<size * size * 3).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let input = target.map { $0 ^ UInt8(truncatingIfNeeded: index &* 37) }
        return ImagePair(name: name(at: index), input: Image(width: size, height: size, channels: 3, bytes: input),
                         target: Image(width: size, height: size, channels: 3, bytes: target))
    }
}

final class ShardedSamplerTests: XCTestCase {
    func testShardsOfEveryBatchConcatenateToTheWholeBatch() throws {
        let source = RandomPatchSource(count: 5)
        let batches = 4, batchSize = 4
        let whole = TrainingSampler(source: source, batchSize: batchSize, patchSize: 6, seed: 9, workers: 2)
        var expected: [(input: [Float], target: [Float], names: [String])] = []
        for _ in 0..<batches {
            let b = try whole.next()
            expected.append((b.input.values, b.target.values, b.names))
        }
        whole.stop()
        XCTAssertNotEqual(expected[0].input, expected[1].input)

        for k in [2, 4] {
            // From the start and from a resume point, with the global batch index as the state.
            for first in [0, 2] {
                let resume = first > 0 ? TrainingSampler.State(seed: 9, nextBatch: first) : nil
                let shards = (0..<k).map {
                    TrainingSampler(source: source, batchSize: batchSize, patchSize: 6, seed: 9, resume: resume, shard: ($0, k))
                }
                for index in first..<batches {
                    var input: [Float] = [], target: [Float] = [], names: [String] = []
                    for shard in shards {
                        let b = try shard.next()
                        XCTAssertEqual(b.input.shape, [batchSize / k, 3, 6, 6])
                        XCTAssertEqual(b.index, index)
                        input += b.input.values; target += b.target.values; names += b.names
                    }
                    XCTAssertEqual(input, expected[index].input, "K = \(k), batch \(index): inputs")
                    XCTAssertEqual(target, expected[index].target, "K = \(k), batch \(index): targets")
                    XCTAssertEqual(names, expected[index].names, "K = \(k), batch \(index): names")
                }
                for shard in shards {
                    XCTAssertEqual(shard.state, TrainingSampler.State(seed: 9, nextBatch: batches), "the state counts global batches")
                    shard.stop()
                }
            }
        }
    }
}
