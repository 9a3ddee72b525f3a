// Joining and cutting along an axis: concat, stack, split, chunk, slice.
//
// Along an axis a contiguous tensor is `outer` blocks (the axes before it) of `extent × inner` floats (the axis
// and the axes after it), so every one of these ops is a loop of block copies.
//
// Each piece of a split is its own recorded slice, so a piece that is never used downstream simply never
// contributes a gradient (it counts as zero), and the pieces' gradients add up in the input.

import Foundation

extension Tensor {
    /// The products of the extents before and after `axis`.
    fileprivate static func outerInner(_ shape: [Int], axis: Int) -> (outer: Int, inner: Int) {
        (shape[..<axis].reduce(1, *), shape[(axis + 1)...].reduce(1, *))
    }

    /// Copies `outer` blocks of `length` floats: block `o` goes from `src + o·srcStride` to `dst + o·dstStride`.
    fileprivate static func copyBlocks(
        from src: UnsafeMutablePointer<Float>, srcStride: Int,
        to dst: UnsafeMutablePointer<Float>, dstStride: Int, length: Int, outer: Int
    ) {
        guard length > 0 else { return }
        Parallel.forEach(outer, cost: length) { range in
            for o in range { (dst + o * dstStride).update(from: src + o * srcStride, count: length) }
        }
    }

    /// Joins tensors along `axis` (PyTorch's `torch.cat`).
    ///
    /// - Parameters:
    ///   - tensors: at least one tensor; all have the same rank and the same extents except along `axis`.
    ///   - axis: the joining axis; negative counts from the end.
    /// - Returns: the common shape with `axis` extent equal to the sum of the inputs' extents.
    public static func concat(_ tensors: [Tensor], axis: Int) -> Tensor {
        precondition(!tensors.isEmpty, "concat: no tensors")
        let first = tensors[0]
        let a = first.normalizedAxis(axis)
        for (i, t) in tensors.enumerated() {
            precondition(t.rank == first.rank && t.shape.enumerated().allSatisfy { $0.offset == a || $0.element == first.shape[$0.offset] },
                         "concat: tensor \(i) has shape \(t.shape), incompatible with \(first.shape) along axis \(axis)")
        }
        let extents = tensors.map { $0.shape[a] }
        let total = extents.reduce(0, +)
        var outShape = first.shape
        outShape[a] = total
        let out = Tensor(uninitialized: outShape)
        let (outer, inner) = outerInner(outShape, axis: a)
        var offset = 0
        for (t, e) in zip(tensors, extents) {
            copyBlocks(from: t.pointer, srcStride: e * inner, to: out.pointer + offset * inner, dstStride: total * inner,
                       length: e * inner, outer: outer)
            offset += e
        }
        return out.recorded("concat", tensors) { g in
            var start = 0
            return zip(tensors, extents).map { t, e in
                defer { start += e }
                return t.requiresGrad ? g.slice(axis: a, start: start, end: start + e) : nil
            }
        }
    }

    /// Joins same-shaped tensors along a new axis (PyTorch's `torch.stack`).
    ///
    /// - Parameters:
    ///   - tensors: at least one tensor, all of the same shape `S`.
    ///   - axis: the position of the new axis in the result, `0...S.count`; negative counts from the end of the
    ///     result's shape.
    /// - Returns: `S` with an axis of extent `tensors.count` inserted at `axis`.
    public static func stack(_ tensors: [Tensor], axis: Int) -> Tensor {
        precondition(!tensors.isEmpty, "stack: no tensors")
        let shape = tensors[0].shape
        let a = axis < 0 ? axis + shape.count + 1 : axis
        precondition(a >= 0 && a <= shape.count, "stack: axis \(axis) out of range for tensors of shape \(shape)")
        for (i, t) in tensors.enumerated() {
            precondition(t.shape == shape, "stack: tensor \(i) has shape \(t.shape), tensor 0 has \(shape)")
        }
        var expandedShape = shape
        expandedShape.insert(1, at: a)
        return concat(tensors.map { $0.reshaped(expandedShape) }, axis: a)
    }

    /// The sub-range `start..<end` of `axis` (PyTorch's `narrow`), copied into a new tensor.
    ///
    /// The backward pass writes the gradient into zeros shaped like `self`.
    ///
    /// - Parameters:
    ///   - axis: negative counts from the end.
    ///   - start, end: `0 <= start <= end <= size(axis)`.
    /// - Returns: `self`'s shape with extent `end − start` along `axis`.
    public func slice(axis: Int, start: Int, end: Int) -> Tensor {
        let a = normalizedAxis(axis)
        let extent = shape[a]
        precondition(start >= 0 && start <= end && end <= extent,
                     "slice: range \(start)..<\(end) out of bounds for axis \(axis) of extent \(extent) (shape \(shape))")
        if start == 0 && end == extent { return self }
        var outShape = shape
        outShape[a] = end - start
        let out = Tensor(uninitialized: outShape)
        let (outer, inner) = Tensor.outerInner(shape, axis: a)
        Tensor.copyBlocks(from: pointer + start * inner, srcStride: extent * inner, to: out.pointer,
                          dstStride: (end - start) * inner, length: (end - start) * inner, outer: outer)
        let inputShape = shape
        return out.recorded("slice", [self]) { g in
            let gx = Tensor(uninitialized: inputShape)
            let gp = g.pointer, dp = gx.pointer
            let before = start * inner, length = (end - start) * inner, row = extent * inner
            // Only the complement of the slice is zero-filled: the slice itself is overwritten by g.
            Parallel.forEach(outer, cost: row) { range in
                for o in range {
                    let d = dp + o * row
                    d.update(repeating: 0, count: before)
                    (d + before).update(from: gp + o * length, count: length)
                    (d + before + length).update(repeating: 0, count: row - before - length)
                }
            }
            return [gx]
        }
    }

    /// Cuts `axis` into consecutive pieces of the given extents (PyTorch's `torch.split` with a list).
    ///
    /// - Parameters:
    ///   - sizes: non-negative extents that add up to `size(axis)`.
    ///   - axis: negative counts from the end.
    /// - Returns: one tensor per size, each `self`'s shape with that extent along `axis`.
    public func split(_ sizes: [Int], axis: Int) -> [Tensor] {
        let a = normalizedAxis(axis)
        precondition(sizes.allSatisfy { $0 >= 0 } && sizes.reduce(0, +) == shape[a],
                     "split: sizes \(sizes) do not add up to extent \(shape[a]) of axis \(axis) (shape \(shape))")
        var start = 0
        return sizes.map { size in
            defer { start += size }
            return slice(axis: a, start: start, end: start + size)
        }
    }

    /// Cuts `axis` into `n` equal pieces (PyTorch's `torch.chunk` when the extent is divisible by `n`).
    ///
    /// - Parameters:
    ///   - n: the number of pieces; must divide `size(axis)`.
    ///   - axis: negative counts from the end.
    /// - Returns: `n` tensors, each with extent `size(axis) / n` along `axis`.
    public func chunk(_ n: Int, axis: Int) -> [Tensor] {
        let a = normalizedAxis(axis)
        precondition(n > 0 && shape[a] % n == 0, "chunk: extent \(shape[a]) of axis \(axis) (shape \(shape)) is not divisible into \(n) chunks")
        return split([Int](repeating: shape[a] / n, count: n), axis: a)
    }
}
