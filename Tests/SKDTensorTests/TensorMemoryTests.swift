import SKDTensor
import XCTest

/// The cache of freed large buffers behind `TensorStorage`.
final class TensorMemoryTests: XCTestCase {
    override func setUp() { TensorMemory.releaseCachedBuffers() }
    override func tearDown() { TensorMemory.releaseCachedBuffers() }

    func testFreedLargeBufferIsReusedBySameSizeClass() {
        let elements = (3 << 20) / 4 + 123          // a little over 3 MiB: a size class above the minimum
        var first: Tensor? = Tensor(zeros: [elements])
        let address = first!.pointer
        first = nil
        XCTAssertGreaterThan(TensorMemory.cachedBytes, 0, "a freed large buffer should wait in the cache")
        // A request of the same class (a few elements fewer) gets the same buffer back, and the cache empties.
        let second = noGrad { Tensor(uninitialized: [elements - 7]) }
        XCTAssertEqual(second.pointer, address)
        XCTAssertEqual(TensorMemory.cachedBytes, 0)
    }

    func testSmallBuffersAreNotCached() {
        var small: Tensor? = Tensor(zeros: [1000])
        _ = small!.pointer
        small = nil
        XCTAssertEqual(TensorMemory.cachedBytes, 0)
    }

    func testCapAndRelease() {
        let saved = TensorMemory.cacheLimitBytes
        defer { TensorMemory.cacheLimitBytes = saved }
        TensorMemory.cacheLimitBytes = 0
        var t: Tensor? = noGrad { Tensor(uninitialized: [1 << 20]) }
        t = nil
        XCTAssertNil(t)
        XCTAssertEqual(TensorMemory.cachedBytes, 0, "a zero cap disables the cache")

        TensorMemory.cacheLimitBytes = 16 << 20
        var buffers: [Tensor]? = noGrad { (0..<8).map { _ in Tensor(uninitialized: [1 << 20]) } }   // 8 × 4 MiB
        XCTAssertEqual(buffers?.count, 8)
        buffers = nil
        XCTAssertLessThanOrEqual(TensorMemory.cachedBytes, 16 << 20, "the cache never holds more than its cap")
        XCTAssertGreaterThan(TensorMemory.cachedBytes, 0)
        TensorMemory.releaseCachedBuffers()
        XCTAssertEqual(TensorMemory.cachedBytes, 0)
    }

    func testRecordedGraphRaisesTheCapButInferenceDoesNot() {
        let saved = TensorMemory.cacheLimitBytes
        defer { TensorMemory.cacheLimitBytes = saved }
        TensorMemory.cacheLimitBytes = 4 << 20
        var inference: [Tensor]? = noGrad { (0..<4).map { _ in Tensor(uninitialized: [1 << 20]) } }
        XCTAssertEqual(inference?.count, 4)
        XCTAssertEqual(TensorMemory.effectiveCacheLimitBytes, 4 << 20)
        inference = nil
        var graph: [Tensor]? = (0..<4).map { _ in Tensor(uninitialized: [1 << 20]) }    // 16 MiB live while recording
        XCTAssertEqual(graph?.count, 4)
        XCTAssertGreaterThanOrEqual(TensorMemory.effectiveCacheLimitBytes, 20 << 20)
        graph = nil
        XCTAssertGreaterThanOrEqual(TensorMemory.cachedBytes, 16 << 20, "a freed graph waits for the next step")
    }
}
