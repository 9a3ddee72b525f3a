// Training batches of random patches, decoded ahead on background threads; whole-image validation iteration.
//
// Reproducibility without shared generator state: sample s of the run (batch b holds samples b·B ..< (b+1)·B,
// running on across epochs) uses a generator seeded from (seed, s) for its patch position, augmentation and
// synthetic degradation, and epoch e's order is a shuffle seeded from (seed, e). A batch is therefore a function
// of (seed, b) alone: the sampler's whole state is `State(seed, nextBatch)`, worker threads can produce batches
// in any order, and a resumed run sees exactly the batches the interrupted one would have.

import Foundation
import SKDTensor

/// One training batch.
public struct TrainingBatch {
    /// The batch's position in the run, from 0.
    public let index: Int
    /// Degraded patches, `[B, 3, P, P]` float32 in the sampler's pixel range.
    public let input: Tensor
    /// Clean patches, `[B, 3, P, P]` float32 in the sampler's pixel range.
    public let target: Tensor
    /// The pair names of the B samples.
    public let names: [String]
}

/// How training batches are cut from a dataset; deterministic given the seed and batch index.
public struct BatchRecipe: Sendable {
    /// The dataset.
    public var source: any PairedImageSource
    /// Samples per batch.
    public var batchSize: Int
    /// Patch side length.
    public var patchSize: Int
    /// The run seed.
    public var seed: UInt64
    /// Tensor value range.
    public var range: PixelRange
    /// Whether patches get a random flip/rotation (one of the 8 symmetries of the square).
    public var augment: Bool
    /// Whether each epoch visits the pairs in a seeded random order (else in dataset order).
    public var shuffle: Bool

    static let sampleStream: UInt64 = 1
    static let epochStream: UInt64 = 2

    /// The visiting order of epoch `epoch`: a Fisher–Yates shuffle seeded from (seed, epoch), or the identity.
    public func order(epoch: Int) -> [Int] {
        var order = Array(0..<source.count)
        guard shuffle else { return order }
        var rng = SeedDerivation.generator(seed, stream: BatchRecipe.epochStream, index: epoch)
        for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, rng.int(below: i + 1)) }
        return order
    }

    /// Builds batch `index`. `cachedOrder` keeps the last epoch's order between calls on one thread.
    func batch(_ index: Int, cachedOrder: inout (epoch: Int, order: [Int])?) throws -> TrainingBatch {
        let p = patchSize
        let input = Tensor(uninitialized: [batchSize, 3, p, p])
        let target = Tensor(uninitialized: [batchSize, 3, p, p])
        var names = [String]()
        for j in 0..<batchSize {
            let sample = index * batchSize + j
            let epoch = sample / source.count, position = sample % source.count
            if cachedOrder?.epoch != epoch { cachedOrder = (epoch, order(epoch: epoch)) }
            let item = cachedOrder!.order[position]
            var rng = SeedDerivation.generator(seed, stream: BatchRecipe.sampleStream, index: sample)
            let pair = try source.patch(at: item, size: p, using: &rng)
            let symmetry = augment ? rng.int(below: 8) : 0
            BatchRecipe.store(pair.input.rgb(), into: input, at: j, symmetry: symmetry, range: range)
            BatchRecipe.store(pair.target.rgb(), into: target, at: j, symmetry: symmetry, range: range)
            names.append(pair.name)
        }
        return TrainingBatch(index: index, input: input, target: target, names: names)
    }

    /// Writes the square `image` into item `item` of `[B, 3, P, P]` `tensor` transformed by `symmetry`
    /// (bit 0: transpose, bit 1: flip rows, bit 2: flip columns; together the 8 flips/rotations of the square).
    static func store(_ image: Image, into tensor: Tensor, at item: Int, symmetry: Int, range: PixelRange) {
        let p = image.width
        precondition(image.height == p && image.channels == 3 && tensor.shape == [tensor.shape[0], 3, p, p],
                     "BatchRecipe.store: \(image.width)x\(image.height)x\(image.channels) patch into \(tensor.shape)")
        let transpose = symmetry & 1 != 0, flipRows = symmetry & 2 != 0, flipColumns = symmetry & 4 != 0
        let plane = p * p
        let out = tensor.pointer + item * 3 * plane
        // Source sample of output (y, x): row a, column b as below, at (a * p + b) * 3 + channel.
        // Stepping x moves the source by `step` samples; each output row starts at `start(y)`.
        func origin(_ y: Int, _ x: Int) -> Int {
            var a = transpose ? x : y, b = transpose ? y : x
            if flipRows { a = p - 1 - a }
            if flipColumns { b = p - 1 - b }
            return (a * p + b) * 3
        }
        let step = p > 1 ? origin(0, 1) - origin(0, 0) : 0
        func copy<S>(_ samples: UnsafeBufferPointer<S>, _ convert: (S) -> Float) {
            for y in 0..<p {
                let start = origin(y, 0)
                for ch in 0..<3 {
                    let o = out + ch * plane + y * p
                    var s = start + ch
                    for x in 0..<p {
                        o[x] = convert(samples[s])
                        s += step
                    }
                }
            }
        }
        switch image.pixels {
        case .uint8(let bytes):
            let table = range.byteTable
            table.withUnsafeBufferPointer { t in bytes.withUnsafeBufferPointer { copy($0) { t[Int($0)] } } }
        case .float(let floats):
            floats.withUnsafeBufferPointer { copy($0) { range.encode($0) } }
        }
    }
}

/// Random training patches in batches, prepared ahead of time by background threads.
///
/// The first `next()` waits for decoding; afterwards up to `prefetch` batches are ready or in preparation, so
/// a trainer slower than the decoder never waits for I/O. Batches come out in index order whatever the number of
/// workers. `state` can be stored in a checkpoint and passed back as `resume` to continue the same sequence.
public final class TrainingSampler {
    /// Everything needed to continue a run's batch sequence.
    public struct State: Codable, Equatable, Sendable {
        /// The run seed.
        public var seed: UInt64
        /// The index of the next batch `next()` returns.
        public var nextBatch: Int

        /// A state starting at batch `nextBatch` of the run seeded with `seed`.
        public init(seed: UInt64, nextBatch: Int) {
            self.seed = seed
            self.nextBatch = nextBatch
        }
    }

    /// How batches are made.
    public let recipe: BatchRecipe
    private let pipeline: Pipeline

    /// A sampler drawing `patchSize`×`patchSize` patches from `source` in batches of `batchSize`.
    ///
    /// - Parameters:
    ///   - seed: the run seed (ignored when `resume` is given: the state carries its own).
    ///   - range: the tensor value range (the paper trains in `.minusOneToOne`).
    ///   - augment: random flips and 90° rotations, identical for input and target.
    ///   - shuffle: a new seeded order every epoch.
    ///   - prefetch: how many batches may be ready or in preparation ahead of the consumer (≥ 1).
    ///   - workers: background decoding threads (≥ 1).
    ///   - resume: a state from `state` of an earlier sampler with the same dataset and settings.
    ///   - shard: data-parallel training: this sampler yields share `index` of `count` equal shares of each batch
    ///     (samples `index·B/count ..< (index+1)·B/count` of batch b, as `[B/count, 3, P, P]`); `batchSize` B stays
    ///     the global batch and must be divisible by `count`. `state` counts global batches, so it is the same for
    ///     every share and any `count`.
    public init(source: any PairedImageSource, batchSize: Int, patchSize: Int = 128, seed: UInt64,
                range: PixelRange = .minusOneToOne, augment: Bool = true, shuffle: Bool = true,
                prefetch: Int = 4, workers: Int = 1, resume: State? = nil, shard: (index: Int, count: Int) = (0, 1)) {
        precondition(source.count > 0, "TrainingSampler: the dataset is empty")
        precondition(batchSize > 0 && patchSize > 0, "TrainingSampler: batch size \(batchSize) and patch size \(patchSize) must be positive")
        precondition(prefetch >= 1 && workers >= 1, "TrainingSampler: prefetch \(prefetch) and workers \(workers) must be at least 1")
        precondition(shard.count >= 1 && (0..<shard.count).contains(shard.index) && batchSize % shard.count == 0,
                     "TrainingSampler: shard \(shard.index) of \(shard.count) of a batch of \(batchSize)")
        // Share r of global batch b is batch b·count + r of batches of B/count samples: the same samples, the same seeds.
        recipe = BatchRecipe(source: source, batchSize: batchSize / shard.count, patchSize: patchSize, seed: resume?.seed ?? seed,
                             range: range, augment: augment, shuffle: shuffle)
        pipeline = Pipeline(recipe: recipe, first: resume?.nextBatch ?? 0, capacity: prefetch, shard: shard)
        for _ in 0..<workers {
            let pipeline = self.pipeline
            let thread = Thread { pipeline.work() }
            thread.name = "SKDImage.TrainingSampler"
            thread.start()
        }
    }

    deinit { pipeline.stop() }

    /// The state to store in a checkpoint: resuming from it makes `next()` return the batch it would return now.
    public var state: State { State(seed: recipe.seed, nextBatch: pipeline.consumed) }

    /// How many finished batches are waiting to be taken (at most `prefetch`); a trainer that keeps finding 0
    /// here is waiting on decoding and may want more workers.
    public var readyBatches: Int { pipeline.readyCount }

    /// The next batch, waiting for the background threads if it is not ready.
    ///
    /// - Throws: the error that prevented building this batch (an undecodable file, a too-small image); the
    ///   failed batch counts as consumed, so the following call moves on.
    public func next() throws -> TrainingBatch { try pipeline.take() }

    /// Stops the background threads after their current batch. `next()` must not be called afterwards.
    public func stop() { pipeline.stop() }
}

/// The bounded, ordered hand-off between the worker threads and the consumer.
private final class Pipeline: @unchecked Sendable {
    let recipe: BatchRecipe
    let capacity: Int
    let condition = NSCondition()
    // Guarded by `condition`:
    var ready = [Int: Result<TrainingBatch, Error>]()
    var nextToBuild: Int
    var consumed: Int { condition.lock(); defer { condition.unlock() }; return nextToTake }
    var nextToTake: Int
    var stopped = false
    var readyCount: Int { condition.lock(); defer { condition.unlock() }; return ready.count }

    let shard: (index: Int, count: Int)

    init(recipe: BatchRecipe, first: Int, capacity: Int, shard: (index: Int, count: Int)) {
        self.recipe = recipe
        self.capacity = capacity
        self.shard = shard
        nextToBuild = first
        nextToTake = first
    }

    func work() {
        var cachedOrder: (epoch: Int, order: [Int])? = nil
        while true {
            condition.lock()
            while !stopped && nextToBuild >= nextToTake + capacity { condition.wait() }
            if stopped { condition.unlock(); return }
            let index = nextToBuild
            nextToBuild += 1
            condition.unlock()

            let result = Result { () throws -> TrainingBatch in
                let b = try recipe.batch(index * shard.count + shard.index, cachedOrder: &cachedOrder)
                return TrainingBatch(index: index, input: b.input, target: b.target, names: b.names)
            }

            condition.lock()
            ready[index] = result
            condition.broadcast()
            condition.unlock()
        }
    }

    func take() throws -> TrainingBatch {
        condition.lock()
        precondition(!stopped, "TrainingSampler.next: the sampler was stopped")
        while ready[nextToTake] == nil { condition.wait() }
        let result = ready.removeValue(forKey: nextToTake)!
        nextToTake += 1
        condition.broadcast()
        condition.unlock()
        return try result.get()
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }
}

// MARK: - Validation

/// One whole validation image pair, as tensors for the network and 8-bit images for the metrics.
public struct ValidationSample {
    /// The pair's name.
    public let name: String
    /// The degraded image, `[1, 3, H, W]` float32 in the iterator's range (synthetic degradations unquantised).
    public let input: Tensor
    /// The clean image, `[1, 3, H, W]` float32 in the iterator's range.
    public let target: Tensor
    /// The degraded image itself.
    public let inputImage: Image
    /// The clean image itself (8-bit), the reference for `Metrics`.
    public let targetImage: Image
}

/// Iterates over every pair of a dataset at full size, in dataset order. Synthetic degradations are seeded per
/// image from (seed, index), so every evaluation sees the same degraded inputs.
public struct ValidationIterator {
    /// The dataset.
    public let source: any PairedImageSource
    /// Tensor value range.
    public let range: PixelRange
    /// The seed of the synthetic degradations.
    public let seed: UInt64
    /// The index of the pair `next()` returns.
    public private(set) var position = 0

    static let stream: UInt64 = 3

    /// An iterator over `source` producing tensors in `range`.
    public init(source: any PairedImageSource, range: PixelRange = .minusOneToOne, seed: UInt64 = 0) {
        self.source = source
        self.range = range
        self.seed = seed
    }

    /// Pair `index` at full size.
    public func sample(at index: Int) throws -> ValidationSample {
        var rng = SeedDerivation.generator(seed, stream: ValidationIterator.stream, index: index)
        let pair = try source.pair(at: index, using: &rng)
        let input = pair.input.rgb(), target = pair.target.rgb()
        return ValidationSample(name: pair.name, input: input.tensor(range: range), target: target.tensor(range: range),
                                inputImage: input, targetImage: target.quantized())
    }

    /// The next pair, or `nil` after the last.
    public mutating func next() throws -> ValidationSample? {
        guard position < source.count else { return nil }
        defer { position += 1 }
        return try sample(at: position)
    }
}
