// Tensor: the one data type of SwiftSKD.
//
// Layout, stated once for the whole package: every tensor is float32, contiguous and row-major;
// images and feature maps are NCHW (`[batch, channels, height, width]`); token sequences are
// `[batch, tokens, channels]`. Every shape written in a doc comment of this package uses that order.

import Foundation

/// The 64-byte-aligned buffer behind one or more tensors.
///
/// Reshapes share their storage (the data is contiguous, so a reshape is only a new shape).
/// Storage is freed as soon as the last tensor using it goes away: intermediates of a no-grad forward
/// pass die as soon as the next op has consumed them.
@usableFromInline package final class TensorStorage {
    /// The first element. Always aligned to 64 bytes (one cache line, one AVX-512 register).
    @usableFromInline package let pointer: UnsafeMutablePointer<Float>
    /// The number of elements.
    package let count: Int

    /// The bytes actually reserved (≥ `count` floats: large buffers are rounded up to a size class of the cache).
    private let capacityBytes: Int

    init(count: Int) {
        precondition(count >= 0, "TensorStorage: negative element count \(count)")
        self.count = count
        let (raw, capacity) = TensorMemory.allocate(byteCount: max(count, 1) * MemoryLayout<Float>.stride)
        capacityBytes = capacity
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    deinit { TensorMemory.release(UnsafeMutableRawPointer(pointer), capacityBytes: capacityBytes) }
}

/// The allocator behind `TensorStorage`: a small cache of freed large buffers.
///
/// Why: glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh `mmap` and returns it
/// with `munmap` on free, so each op's output — tens to hundreds of MiB at 512×512 — page-faults on first touch
/// and is zeroed by the kernel again. In a forward pass that fault-and-zero work cost as much system time as the
/// kernels' user time. Freed buffers of at least `minimumCachedBytes` are therefore kept, keyed by a size class
/// (sizes rounded up to 1/8 of their power of two, so a buffer fits every request of its class), and handed to the
/// next request of the same class: buffers still go back as soon as their last tensor dies (the no-grad "free as
/// soon as dead" behaviour is unchanged), but to this cache, whose total is capped by `cacheLimitBytes` (oldest
/// entries are returned to the system first).
///
/// Training needs more: a step allocates its whole graph (gigabytes at batch 8) and frees it in the backward pass,
/// and the next step allocates the same buffers again. So while gradients are being recorded, the cap also rises to
/// `cacheLimitBytes` plus the peak of live large-buffer bytes seen so far: the freed graph waits in the cache for the
/// next step instead of being unmapped and faulted in again (the process's resident size then stays near that peak
/// between steps, which the step reaches anyway). No-grad work — inference — does not raise the cap.
public enum TensorMemory {
    /// Buffers smaller than this go straight to `malloc`/`free` (glibc reuses those without page faults).
    public static let minimumCachedBytes = 1 << 20

    /// The most bytes kept in freed buffers. 0 disables the cache. Lowering it releases the excess at the next free.
    package static var cacheLimitBytes: Int {
        get { lock.lock(); defer { lock.unlock() }; return limit }
        set { lock.lock(); limit = max(0, newValue); lock.unlock() }
    }

    /// Bytes currently held in freed buffers.
    public static var cachedBytes: Int { lock.lock(); defer { lock.unlock() }; return total }

    /// The cap in force: `cacheLimitBytes` plus the peak of live large-buffer bytes reached while gradients were
    /// being recorded (0 when the cache is disabled).
    package static var effectiveCacheLimitBytes: Int { lock.lock(); defer { lock.unlock() }; return effectiveLimit }

    /// Returns every cached buffer to the system (e.g. before measuring memory, or after a large job) and forgets
    /// the recorded training peak, so the cap falls back to `cacheLimitBytes`.
    public static func releaseCachedBuffers() {
        lock.lock()
        let entries = cache
        cache.removeAll()
        total = 0
        recordingPeak = 0
        lock.unlock()
        for entry in entries { entry.pointer.deallocate() }
    }

    // MARK: Internals

    private static let lock = NSLock()
    private static var limit = 384 << 20
    private static var total = 0
    /// Bytes of large buffers handed out and not yet released, and their peak while recording gradients.
    private static var live = 0
    private static var recordingPeak = 0
    private static var effectiveLimit: Int { limit == 0 ? 0 : limit + recordingPeak }
    /// Freed buffers, oldest first. Tens of entries at most: a linear scan costs nothing next to a MiB-sized buffer.
    private static var cache: [(bytes: Int, pointer: UnsafeMutableRawPointer)] = []

    /// `bytes` rounded up to its size class: multiples of 1/8 of the largest power of two not above it.
    static func sizeClass(_ bytes: Int) -> Int {
        guard bytes >= minimumCachedBytes else { return bytes }
        let step = (1 << (Int.bitWidth - 1 - bytes.leadingZeroBitCount)) >> 3
        return (bytes + step - 1) / step * step
    }

    /// A 64-byte-aligned buffer of at least `byteCount` bytes, and its actual size.
    static func allocate(byteCount: Int) -> (UnsafeMutableRawPointer, Int) {
        let bytes = sizeClass(byteCount)
        if bytes >= minimumCachedBytes {
            let recording = GradMode.isEnabled
            lock.lock()
            live += bytes
            if recording && live > recordingPeak { recordingPeak = live }
            if let index = cache.lastIndex(where: { $0.bytes == bytes }) {
                let entry = cache.remove(at: index)
                total -= bytes
                lock.unlock()
                return (entry.pointer, bytes)
            }
            lock.unlock()
        }
        return (UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64), bytes)
    }

    /// Takes back a buffer from `allocate`.
    static func release(_ pointer: UnsafeMutableRawPointer, capacityBytes bytes: Int) {
        guard bytes >= minimumCachedBytes else { pointer.deallocate(); return }
        var evicted: [UnsafeMutableRawPointer] = []
        lock.lock()
        live -= bytes
        let limit = effectiveLimit
        if bytes > limit {
            evicted.append(pointer)
        } else {
            cache.append((bytes, pointer))
            total += bytes
            while total > limit {
                let oldest = cache.removeFirst()
                total -= oldest.bytes
                evicted.append(oldest.pointer)
            }
        }
        lock.unlock()
        for p in evicted { p.deallocate() }
    }
}

/// A float32, contiguous, row-major n-dimensional array that can take part in reverse-mode autodiff.
///
/// `Tensor` is a reference type, as in PyTorch: a parameter is one object that the model, the optimizer
/// and the checkpoint code all see. Operations never modify their inputs; they return new tensors and, when
/// gradients are being recorded and some input `requiresGrad`, attach a backward node (see
/// `Tensor+Autograd.swift`).
public final class Tensor {
    /// The extent of every axis, outermost first.
    public let shape: [Int]
    /// The number of elements (the product of `shape`).
    public let count: Int
    /// The buffer holding the elements; shared between a tensor and its reshapes.
    @usableFromInline package let storage: TensorStorage

    /// Whether gradients flow to this tensor. Set it on leaves (parameters, inputs under test); results of ops
    /// get it from their inputs.
    public var requiresGrad: Bool
    /// The accumulated gradient of the last `backward()` calls, shaped like `self`; `nil` until one reaches it.
    public var grad: Tensor?
    /// The op that produced this tensor while gradients were being recorded; `nil` for leaves.
    var gradNode: GradNode?

    // MARK: Creation

    /// A tensor with uninitialized contents. Kernels use it for outputs they overwrite completely.
    ///
    /// - Parameter shape: any shape; every extent must be ≥ 0.
    package init(uninitialized shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor: negative extent in shape \(shape)")
        self.shape = shape
        self.count = shape.reduce(1, *)
        self.storage = TensorStorage(count: count)
        self.requiresGrad = false
    }

    /// A tensor that shares `storage` under another shape with the same element count.
    init(shape: [Int], sharing storage: TensorStorage) {
        precondition(shape.reduce(1, *) == storage.count, "Tensor: shape \(shape) does not hold \(storage.count) elements")
        self.shape = shape
        self.count = storage.count
        self.storage = storage
        self.requiresGrad = false
    }

    /// A tensor filled with `value`.
    public convenience init(shape: [Int], repeating value: Float) {
        self.init(uninitialized: shape)
        pointer.update(repeating: value, count: count)
    }

    /// A tensor of zeros.
    public convenience init(zeros shape: [Int]) { self.init(shape: shape, repeating: 0) }

    /// A tensor of ones.
    public convenience init(ones shape: [Int]) { self.init(shape: shape, repeating: 1) }

    /// A tensor holding `values` in row-major order; `values.count` must equal the product of `shape`.
    public convenience init(shape: [Int], values: [Float]) {
        self.init(uninitialized: shape)
        precondition(values.count == count, "Tensor: \(values.count) values for shape \(shape) (\(count) elements)")
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: count) }
    }

    /// A rank-0 tensor (shape `[]`) holding one value.
    public convenience init(_ scalar: Float) {
        self.init(uninitialized: [])
        pointer[0] = scalar
    }

    // MARK: Access

    /// The first element; kernels read and write through it.
    @inlinable package var pointer: UnsafeMutablePointer<Float> { storage.pointer }

    /// The number of axes.
    public var rank: Int { shape.count }

    /// The elements, copied into an array (for tests, printing and small data; never in hot loops).
    public var values: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    /// The value of a one-element tensor.
    public var item: Float {
        precondition(count == 1, "Tensor.item: tensor of shape \(shape) has \(count) elements, not 1")
        return pointer[0]
    }

    /// The extent of `axis`; negative axes count from the end.
    public func size(_ axis: Int) -> Int { shape[normalizedAxis(axis)] }

    /// Turns a possibly negative axis into an index into `shape`, checking its range.
    public func normalizedAxis(_ axis: Int) -> Int {
        let a = axis < 0 ? axis + rank : axis
        precondition(a >= 0 && a < rank, "axis \(axis) out of range for shape \(shape)")
        return a
    }

    /// Row-major strides of `shape`, in elements.
    public static func strides(of shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var s = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[i] = s
            s *= shape[i]
        }
        return strides
    }

    /// A deep copy that does not require gradients and has no history.
    public func copy() -> Tensor {
        let out = Tensor(uninitialized: shape)
        out.pointer.update(from: pointer, count: count)
        return out
    }

    /// The same data without history: gradients do not flow through the result.
    /// Shares storage with `self`.
    public func detached() -> Tensor { Tensor(shape: shape, sharing: storage) }

    /// Overwrites the elements with those of `other` (same element count), outside of autodiff.
    /// Used by optimizers and weight loading.
    public func assign(_ other: Tensor) {
        precondition(other.count == count, "Tensor.assign: \(other.shape) into \(shape)")
        if other.storage !== storage { pointer.update(from: other.pointer, count: count) }
    }
}

extension Tensor {
    /// `‖self − reference‖ / ‖reference‖` in Double (the absolute norm of the difference when `reference` is zero):
    /// the measure every parity check of SwiftSKD uses.
    public func relativeError(to reference: Tensor) -> Double {
        precondition(count == reference.count, "relativeError: \(shape) vs \(reference.shape)")
        var num = 0.0, den = 0.0
        for i in 0..<count {
            let d = Double(pointer[i]) - Double(reference.pointer[i])
            num += d * d
            den += Double(reference.pointer[i]) * Double(reference.pointer[i])
        }
        return den == 0 ? num.squareRoot() : (num / den).squareRoot()
    }
}

extension Tensor: CustomStringConvertible {
    /// The shape, the gradient flag and the first eight elements, e.g. `Tensor([2, 3]: [0, 1, …])`.
    public var description: String {
        let preview = values.prefix(8).map { String(format: "%.5g", $0) }.joined(separator: ", ")
        return "Tensor(\(shape)\(requiresGrad ? ", requiresGrad" : ""): [\(preview)\(count > 8 ? ", …" : "")])"
    }
}
