// Index-driven ops: cyclic roll, top-k masks, masked selection, and row gathering (embedding lookup).

import Foundation

// MARK: - Roll

extension Tensor {
    /// Cyclically shifts elements along axes (PyTorch's `torch.roll(x, shifts, dims)`): the element at index `i`
    /// of a rolled axis moves to `(i + shift) mod extent`. Shifts may be negative or exceed the extent; an axis
    /// listed twice is rolled by the sum of its shifts.
    ///
    /// - Parameters:
    ///   - shifts: one shift per entry of `axes`.
    ///   - axes: the rolled axes; negative counts from the end.
    /// - Returns: the same shape as `self`.
    public func rolled(shifts: [Int], axes: [Int]) -> Tensor {
        precondition(shifts.count == axes.count, "rolled: \(shifts.count) shifts for \(axes.count) axes")
        var total = [Int](repeating: 0, count: rank)
        for (s, axis) in zip(shifts, axes) { total[normalizedAxis(axis)] += s }
        for i in 0..<rank where shape[i] > 0 { total[i] = ((total[i] % shape[i]) + shape[i]) % shape[i] }
        let out = Tensor.roll(self, by: total)
        return out.recorded("rolled", [self]) { g in
            [Tensor.roll(g, by: total.enumerated().map { $0.element == 0 ? 0 : g.shape[$0.offset] - $0.element })]
        }
    }

    /// `x` rolled by `shifts[i]` (in `0..<shape[i]`) along every axis, in one pass: each output row of the
    /// innermost rolled axis is two block copies, and the outer rolled axes only change where the rows come from.
    fileprivate static func roll(_ x: Tensor, by shifts: [Int]) -> Tensor {
        let out = Tensor(uninitialized: x.shape)
        guard x.count > 0 else { return out }
        guard let last = shifts.lastIndex(where: { $0 != 0 }) else {
            out.pointer.update(from: x.pointer, count: x.count)
            return out
        }
        let shape = x.shape, strides = Tensor.strides(of: shape)
        let extent = shape[last], inner = strides[last], rowLength = extent * inner
        let rows = x.count / rowLength
        let s = shifts[last] * inner
        let src = x.pointer, dst = out.pointer
        Parallel.forEach(rows, cost: rowLength) { range in
            for row in range {
                // Decompose the output row index over the axes before `last` and map it to its source row.
                var rem = row, srcOffset = 0
                for k in stride(from: last - 1, through: 0, by: -1) {
                    let i = rem % shape[k]
                    rem /= shape[k]
                    var j = i - shifts[k]
                    if j < 0 { j += shape[k] }
                    srcOffset += j * strides[k]
                }
                let d = dst + row * rowLength, sr = src + srcOffset
                // Output positions [s, rowLength) come from [0, rowLength − s); positions [0, s) from the tail.
                (d + s).update(from: sr, count: rowLength - s)
                d.update(from: sr + rowLength - s, count: s)
            }
        }
        return out
    }
}

// MARK: - Top-k mask

extension Tensor {
    /// A 0/1 tensor marking the `k` largest entries of each row along the last axis (the mask of
    /// `torch.topk(x, k, dim=-1)`, scattered). Among entries equal to the k-th largest value the lower indices
    /// win. Not differentiable: the result has no history.
    ///
    /// Each row costs O(n) on average: a quickselect on a scratch copy finds the k-th largest value, then one
    /// pass marks the entries above it (and the first ties).
    ///
    /// - Parameter k: `0...n`, where `n` is the last extent.
    /// - Returns: the same shape as `self`, `[..., n]`, with exactly `k` ones per row (fewer only if the row
    ///   holds NaNs).
    public func topKMask(_ k: Int) -> Tensor {
        precondition(rank >= 1, "topKMask: needs at least one axis, got a scalar")
        let n = shape[rank - 1]
        precondition(k >= 0 && k <= n, "topKMask: k = \(k) out of range 0...\(n) for shape \(shape)")
        let out = Tensor(uninitialized: shape)
        let rows = n == 0 ? 0 : count / n
        if k == 0 || k == n {
            out.pointer.update(repeating: k == 0 ? 0 : 1, count: count)
            return out
        }
        let xp = pointer, op = out.pointer
        Parallel.forEach(rows, cost: n * 4) { range in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: n) { buffer in
                let v = buffer.baseAddress!
                for row in range {
                    let x = xp + row * n, o = op + row * n
                    v.update(from: x, count: n)
                    let threshold = Tensor.selectDescending(v, count: n, rank: k - 1)
                    var greater = 0
                    for j in 0..<n where x[j] > threshold { greater += 1 }
                    var ties = k - greater
                    for j in 0..<n {
                        let xj = x[j]
                        if xj > threshold {
                            o[j] = 1
                        } else if xj == threshold && ties > 0 {
                            o[j] = 1
                            ties -= 1
                        } else {
                            o[j] = 0
                        }
                    }
                }
            }
        }
        return out
    }

    /// The value at position `rank` of `v[0..<count]` sorted in descending order (Wirth's / Hoare's selection,
    /// median-of-three pivot). Reorders `v`. Each scan stops at any element that is not strictly on its side of
    /// the pivot, so NaNs cannot run it out of bounds.
    fileprivate static func selectDescending(_ v: UnsafeMutablePointer<Float>, count: Int, rank: Int) -> Float {
        var lo = 0, hi = count - 1
        while lo < hi {
            let a = v[lo], b = v[(lo + hi) / 2], c = v[hi]
            let pivot = Swift.max(Swift.min(a, b), Swift.min(Swift.max(a, b), c))
            var i = lo, j = hi
            while i <= j {
                while v[i] > pivot { i += 1 }
                while v[j] < pivot { j -= 1 }
                if i <= j {
                    let t = v[i]; v[i] = v[j]; v[j] = t
                    i += 1
                    j -= 1
                }
            }
            if rank <= j { hi = j } else if rank >= i { lo = i } else { break }
        }
        return v[rank]
    }
}

// MARK: - Select and masked fill

extension Tensor {
    /// Merges adjacent axes of `outShape` along which every operand's broadcast strides stay consistent, so the
    /// innermost loop is as long as possible. Returns the merged extents and, per operand, its strides
    /// (0 along broadcast axes).
    fileprivate static func broadcastLayout(_ outShape: [Int], _ operands: [[Int]]) -> (dims: [Int], strides: [[Int]]) {
        let aligned: [[Int]] = operands.map { s in
            precondition(s.count <= outShape.count, "broadcast: shape \(s) has more axes than \(outShape)")
            let padded = [Int](repeating: 1, count: outShape.count - s.count) + s
            return zip(padded, Tensor.strides(of: padded)).map { $0.0 == 1 ? 0 : $0.1 }
        }
        var dims: [Int] = []
        var strides = [[Int]](repeating: [], count: operands.count)
        for i in 0..<outShape.count where outShape[i] != 1 {
            let mergeable = !dims.isEmpty && (0..<operands.count).allSatisfy { o in
                strides[o].last! == aligned[o][i] * outShape[i]
            }
            if mergeable {
                dims[dims.count - 1] *= outShape[i]
                for o in 0..<operands.count { strides[o][strides[o].count - 1] = aligned[o][i] }
            } else {
                dims.append(outShape[i])
                for o in 0..<operands.count { strides[o].append(aligned[o][i]) }
            }
        }
        if dims.isEmpty { return ([1], [[Int]](repeating: [0], count: operands.count)) }
        return (dims, strides)
    }

    /// `mask[i] != 0 ? a[i] : b[i]` with the three operands broadcast to `outShape`. No recording.
    fileprivate static func whereKernel(_ mask: Tensor, _ a: Tensor, _ b: Tensor, outShape: [Int]) -> Tensor {
        let out = Tensor(uninitialized: outShape)
        guard out.count > 0 else { return out }
        let (dims, st) = broadcastLayout(outShape, [mask.shape, a.shape, b.shape])
        let inner = dims.last!
        let (im, ia, ib) = (st[0].last!, st[1].last!, st[2].last!)
        let rows = out.count / inner
        let mp = mask.pointer, ap = a.pointer, bp = b.pointer, op = out.pointer
        Parallel.forEach(rows, cost: inner) { range in
            for row in range {
                var rem = row, om = 0, oa = 0, ob = 0
                for k in stride(from: dims.count - 2, through: 0, by: -1) {
                    let i = rem % dims[k]
                    rem /= dims[k]
                    om += i * st[0][k]; oa += i * st[1][k]; ob += i * st[2][k]
                }
                let m = mp + om, x = ap + oa, y = bp + ob, o = op + row * inner
                // The common layouts get loops with unit or zero strides, which vectorise.
                switch (im, ia, ib) {
                case (1, 1, 1): for j in 0..<inner { o[j] = m[j] != 0 ? x[j] : y[j] }
                case (1, 1, 0): let v = y[0]; for j in 0..<inner { o[j] = m[j] != 0 ? x[j] : v }
                case (1, 0, 1): let v = x[0]; for j in 0..<inner { o[j] = m[j] != 0 ? v : y[j] }
                default: for j in 0..<inner { o[j] = m[j * im] != 0 ? x[j * ia] : y[j * ib] }
                }
            }
        }
        return out
    }

    /// `a` where `mask` is non-zero, `b` elsewhere (PyTorch's `torch.where(mask != 0, a, b)`), with all three
    /// broadcast together. Gradients flow to `a` and `b` (each where it was chosen); `mask` gets none.
    ///
    /// - Parameters:
    ///   - mask: any shape broadcast-compatible with `a` and `b`; non-zero means "take `a`".
    ///   - a, b: any broadcast-compatible shapes.
    /// - Returns: the broadcast shape of `mask`, `a` and `b`.
    public static func select(_ mask: Tensor, _ a: Tensor, _ b: Tensor) -> Tensor {
        let outShape = broadcastShape(broadcastShape(mask.shape, a.shape), b.shape)
        let out = whereKernel(mask, a, b, outShape: outShape)
        let zero = Tensor(0)
        return out.recorded("select", [a, b]) { g in
            [a.requiresGrad ? whereKernel(mask, g, zero, outShape: outShape).sumTo(a.shape) : nil,
             b.requiresGrad ? whereKernel(mask, zero, g, outShape: outShape).sumTo(b.shape) : nil]
        }
    }

    /// `value` where `mask` is non-zero, `self` elsewhere (PyTorch's `masked_fill`). The gradient is zero at
    /// filled positions. `-∞` is a valid fill value (attention masks): a softmax turns it into exactly 0.
    ///
    /// - Parameters:
    ///   - mask: a shape that broadcasts to `self`'s shape; non-zero means "fill".
    ///   - value: the fill value.
    /// - Returns: the same shape as `self`.
    public func maskedFill(_ mask: Tensor, value: Float) -> Tensor {
        let outShape = shape
        precondition(Tensor.broadcastShape(mask.shape, outShape) == outShape,
                     "maskedFill: mask \(mask.shape) does not broadcast to \(outShape)")
        let out = Tensor.whereKernel(mask, Tensor(value), self, outShape: outShape)
        return out.recorded("maskedFill", [self]) { g in
            [Tensor.whereKernel(mask, Tensor(0), g, outShape: outShape)]
        }
    }
}

// MARK: - Gather rows

extension Tensor {
    /// Rows of `table` picked by `indices` (an embedding lookup; Uformer's relative-position-bias lookup).
    /// The backward pass adds each output row's gradient into its table row, so repeated indices accumulate.
    ///
    /// - Parameters:
    ///   - table: `[R, C]`.
    ///   - indices: row numbers in `0..<R`, in any order, repeats allowed.
    /// - Returns: `[indices.count, C]`.
    public static func gatherRows(_ table: Tensor, indices: [Int]) -> Tensor {
        precondition(table.rank == 2, "gatherRows: table must be [R, C], got \(table.shape)")
        let r = table.shape[0], c = table.shape[1]
        for (position, index) in indices.enumerated() {
            precondition(index >= 0 && index < r, "gatherRows: index \(index) (at position \(position)) out of range 0..<\(r) for table \(table.shape)")
        }
        let out = Tensor(uninitialized: [indices.count, c])
        let tp = table.pointer, op = out.pointer
        indices.withUnsafeBufferPointer { idx in
            Parallel.forEach(idx.count, cost: c) { range in
                for i in range { (op + i * c).update(from: tp + idx[i] * c, count: c) }
            }
        }
        return out.recorded("gatherRows", [table]) { g in
            let gt = Tensor(zeros: [r, c])
            let gp = g.pointer, dp = gt.pointer
            // Sequential: repeated indices write the same row, and the table is small next to its users.
            for (i, index) in indices.enumerated() {
                let d = dp + index * c, s = gp + i * c
                for j in 0..<c { d[j] += s[j] }
            }
            return [gt]
        }
    }
}
