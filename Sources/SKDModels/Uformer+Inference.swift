// The inference path of Uformer's LeWin block: window attention without window tensors.
//
// Composed from ops, the attention half of one block at 512×512 materialises the partitioned windows, q, k and v
// in the window layout, the `[windows, heads, N, N]` logits (64 MiB per head at the first level), the biased and
// masked logits, the softmax, the product and the merged map. Here the q/k/v projections run as one GEMM over the
// token map (`[B·H·W, 3C]`, the query scale folded into W_q), and every window is then handled in a scratch
// buffer of its own: its tokens gathered from the map at their cyclically shifted positions (plus the modulator's
// projection, `W·m` per window position, since the modulator is added before the projection), attention for all
// heads by one C kernel (`skd_window_attention`: logits, relative-position bias, the −100 shift mask, softmax and
// the product with the values), and the result scattered back to the map positions the window came from. The
// output projection then accumulates onto the residual. Same arithmetic as the composed ops up to float rounding.

import CSKDKernels
import SKDNN
import SKDTensor

extension UformerLeWinBlock {
    /// Whether this call may take the inference path: nothing needs a gradient and no path is dropped at random.
    func runsInference(_ x: Tensor) -> Bool {
        if isTraining && dropPath > 0 { return false }
        if !GradMode.isEnabled { return true }
        if x.requiresGrad { return false }
        return !parameters().contains { $0.requiresGrad }
    }

    /// `y = x + proj(W-MSA(norm1(x) [+ modulator]))`, then `y + mlp(norm2(y))`, without recording.
    ///
    /// - Parameters:
    ///   - x: `[B, H·W, dim]` tokens.
    ///   - height: `H`, a multiple of `window`.
    ///   - width: `W`, a multiple of `window`.
    /// - Returns: `[B, H·W, dim]`.
    func inferenceForward(_ x: Tensor, height: Int, width: Int) -> Tensor {
        noGrad {
            let y = x + attn.inferenceAttention(norm1(x), batch: x.shape[0], height: height, width: width, shift: shift,
                                                modulator: modulator?.weight)
            return y + mlp.forward(norm2(y), height: height, width: width)
        }
    }
}

extension UformerWindowAttention {
    /// Shifted-window attention of a token map, projections included: `proj(W-MSA(windows(x) [+ m]))` merged back.
    ///
    /// - Parameters:
    ///   - x: `[B, H·W, dim]` normalised tokens.
    ///   - batch: `B`.
    ///   - height: `H`, a multiple of `window`.
    ///   - width: `W`, a multiple of `window`.
    ///   - shift: the cyclic shift, `0 ≤ shift < window`.
    ///   - modulator: `[window², dim]` added to every window's tokens before the projections, or `nil`.
    /// - Returns: `[B, H·W, dim]`.
    func inferenceAttention(_ x: Tensor, batch: Int, height: Int, width: Int, shift: Int, modulator: Tensor?) -> Tensor {
        let c = dim, w = window, n = w * w, heads = numHeads, d = dim / numHeads
        precondition(x.rank == 3 && x.shape == [batch, height * width, c] && height % w == 0 && width % w == 0,
                     "UformerWindowAttention: tokens \(x.shape) are not [\(batch), \(height)·\(width), \(c)] in \(w)×\(w) windows")
        // [3C, C]: W_q·scale, W_k, W_v (to_kv holds keys then values), and the matching bias.
        let weight = Tensor.concat([qkv.to_q.weight * scale, qkv.to_kv.weight], axis: 0)
        let bias: Tensor? = qkv.to_q.bias.map { qb in
            Tensor.concat([qb * scale, qkv.to_kv.bias ?? Tensor(zeros: [2 * c])], axis: 0)
        } ?? qkv.to_kv.bias.map { Tensor.concat([Tensor(zeros: [c]), $0], axis: 0) }
        let projected = Tensor.linear(x.reshaped([batch * height * width, c]), weight: weight, bias: bias)  // [B·HW, 3C]
        let modulation = modulator.map { Tensor.linear($0, weight: weight) }                              // [n, 3C]
        let positionBias = self.positionBias()                                                             // [h, n, n]
        let mask = shift > 0 ? UformerShiftMask(height: height, width: width, window: w, shift: shift) : nil
        let attended = Tensor(uninitialized: [batch, height * width, c])

        let gridW = width / w, windowsPerImage = (height / w) * gridW, row3 = 3 * c
        let qkvBase = projected.pointer, out = attended.pointer, biasBase = positionBias.pointer
        let modulationBase = modulation?.pointer
        let labels = mask?.labels ?? []
        labels.withUnsafeBufferPointer { labels in
            Parallel.forEach(batch * windowsPerImage, cost: 2 * n * n * c + n * row3) { windows in
                let gathered = UnsafeMutablePointer<Float>.allocate(capacity: n * row3)
                let result = UnsafeMutablePointer<Float>.allocate(capacity: n * c)
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: n * n + n * d)
                defer { gathered.deallocate(); result.deallocate(); scratch.deallocate() }
                for window in windows {
                    let b = window / windowsPerImage, inImage = window % windowsPerImage
                    let top = (inImage / gridW) * w, left = (inImage % gridW) * w
                    // Window token t sits at shifted-frame (top + t/w, left + t%w), i.e. at map position
                    // ((top + t/w + shift) mod H, (left + t%w + shift) mod W) — windowPartitioned's mapping.
                    func mapIndex(_ t: Int) -> Int {
                        let r = (top + t / w + shift) % height, col = (left + t % w + shift) % width
                        return (b * height + r) * width + col
                    }
                    for t in 0..<n {
                        let dst = gathered + t * row3
                        dst.update(from: qkvBase + mapIndex(t) * row3, count: row3)
                        if let m = modulationBase { for k in 0..<row3 { dst[k] += m[t * row3 + k] } }
                    }
                    skd_window_attention(gathered, gathered + c, gathered + 2 * c, row3, result, c, biasBase,
                                         mask == nil ? nil : labels.baseAddress.map { $0 + inImage * n }, Int32(n), Int32(heads), Int32(d),
                                         scratch)
                    for t in 0..<n { (out + mapIndex(t) * c).update(from: result + t * c, count: c) }
                }
            }
        }
        return proj(attended)
    }
}
