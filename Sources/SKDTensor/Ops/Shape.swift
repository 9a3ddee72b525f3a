// Reshape, permute and transpose. Reshapes share storage; permutes copy into a new contiguous tensor.

import Foundation

extension Tensor {
    /// The same elements under a new shape with the same element count; one extent may be -1 (inferred).
    /// Shares storage with `self`.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var shape = newShape
        if let i = shape.firstIndex(of: -1) {
            let known = shape.enumerated().filter { $0.offset != i }.map(\.element).reduce(1, *)
            precondition(known > 0 && count % known == 0, "reshape: cannot infer -1 in \(newShape) for \(self.shape)")
            shape[i] = count / known
        }
        precondition(shape.reduce(1, *) == count, "reshape: \(self.shape) (\(count) elements) cannot become \(newShape)")
        if shape == self.shape { return self }
        let inputShape = self.shape
        return Tensor(shape: shape, sharing: storage).recorded("reshape", [self]) { g in [g.reshaped(inputShape)] }
    }

    /// Reorders the axes: output axis `i` is input axis `order[i]` (PyTorch's `permute`).
    public func permuted(_ order: [Int]) -> Tensor {
        precondition(order.count == rank && Set(order) == Set(0..<rank), "permute: \(order) is not a permutation of \(rank) axes")
        if order == Array(0..<rank) { return self }
        let outShape = order.map { shape[$0] }
        let out = Tensor(uninitialized: outShape)
        let inStrides = Tensor.strides(of: shape)
        let srcStrides = order.map { inStrides[$0] }
        Tensor.stridedCopy(from: pointer, strides: srcStrides, shape: outShape, to: out.pointer)
        var inverse = [Int](repeating: 0, count: rank)
        for (i, o) in order.enumerated() { inverse[o] = i }
        return out.recorded("permute", [self]) { g in [g.permuted(inverse)] }
    }

    /// Swaps two axes.
    public func transposed(_ a: Int, _ b: Int) -> Tensor {
        var order = Array(0..<rank)
        order.swapAt(normalizedAxis(a), normalizedAxis(b))
        return permuted(order)
    }

    /// Copies the strided view (`shape`, source `strides`) into contiguous `dst`, in parallel over rows.
    static func stridedCopy(from src: UnsafeMutablePointer<Float>, strides: [Int], shape: [Int], to dst: UnsafeMutablePointer<Float>) {
        let total = shape.reduce(1, *)
        guard total > 0 else { return }
        // Merge adjacent axes that are contiguous in the source, so the inner loop is as long as possible.
        var dims: [Int] = [], st: [Int] = []
        for (e, s) in zip(shape, strides) where e != 1 {
            if let last = dims.last, st.last! == s * e {
                dims[dims.count - 1] = last * e
                st[st.count - 1] = s
            } else { dims.append(e); st.append(s) }
        }
        if dims.isEmpty { dst[0] = src[0]; return }
        let inner = dims.last!, innerStride = st.last!
        let rows = total / inner
        Parallel.forEach(rows, cost: inner) { r in
            for row in r {
                var rem = row, off = 0
                for k in stride(from: dims.count - 2, through: 0, by: -1) {
                    off += (rem % dims[k]) * st[k]
                    rem /= dims[k]
                }
                let d = dst + row * inner, s = src + off
                if innerStride == 1 { d.update(from: s, count: inner) }
                else { for j in 0..<inner { d[j] = s[j * innerStride] } }
            }
        }
    }
}
