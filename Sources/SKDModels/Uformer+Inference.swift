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
// output projection then accumulates onto the residual. The LeFF feed-forward runs in bands of token rows (a
// band of rows is a contiguous run of tokens): linear1 + GELU on the band and one halo row each side, the token
// depthwise 3×3 + GELU, and linear2 accumulated onto the residual's rows — no full-size hidden map (4·C wide, e.g.
// 128 MiB per tensor at uformer-s's last decoder level at 512×512). Same arithmetic as the composed ops up to float
// rounding.

import CSKDKernels
import SKDNN
import SKDTensor

extension UformerLeWinBlock {
    /// The bytes of LeFF hidden activations one row band of the inference path may hold (at least one row plus the
    /// two halo rows is always taken). A tuning knob, not thread-safe to change while a forward pass runs.
    package static var feedForwardBandBytes = 8 << 20

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
            if let leff = mlp as? UformerLeFF {
                return leff.inferenceResidual(norm2(y), adding: y, height: height, width: width,
                                              bandBytes: Self.feedForwardBandBytes)
            }
            return y + mlp(norm2(y), height: height, width: width)
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
        let weight = Tensor.concat([qkv.toQ.weight * scale, qkv.toKV.weight], axis: 0)
        let bias: Tensor? = qkv.toQ.bias.map { qb in
            Tensor.concat([qb * scale, qkv.toKV.bias ?? Tensor(zeros: [2 * c])], axis: 0)
        } ?? qkv.toKV.bias.map { Tensor.concat([Tensor(zeros: [c]), $0], axis: 0) }
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

extension UformerLeFF {
    /// `residual + LeFF(x)` in bands of token rows, without recording.
    ///
    /// - Parameters:
    ///   - x: `[B, H·W, dim]`, the normalised tokens.
    ///   - residual: `[B, H·W, dim]`.
    ///   - height: `H`.
    ///   - width: `W`.
    ///   - bandBytes: the budget of one band's hidden activations, halo rows included.
    /// - Returns: `[B, H·W, dim]`.
    func inferenceResidual(_ x: Tensor, adding residual: Tensor, height: Int, width: Int, bandBytes: Int) -> Tensor {
        let batch = x.shape[0]
        precondition(x.rank == 3 && x.shape == [batch, height * width, dim] && residual.shape == x.shape,
                     "UformerLeFF: tokens \(x.shape) / residual \(residual.shape) are not [B, \(height)·\(width), \(dim)]")
        let fc1 = linear1[0] as! Linear, conv = dwconv[0] as! Conv2d, fc2 = linear2[0] as! Linear
        let tokens = height * width
        let rowsPerBand = max(1, min(height, bandBytes / max(1, hiddenDim * width * 4) - 2))
        // The residual plus linear2's bias; each band's GEMM accumulates onto its rows.
        let out = Tensor(uninitialized: residual.shape)
        let o = out.pointer, r = residual.pointer
        if let bias = fc2.bias?.pointer {
            Parallel.forEach(batch * tokens, cost: dim) { rows in
                for t in rows { for ch in 0..<dim { o[t * dim + ch] = r[t * dim + ch] + bias[ch] } }
            }
        } else {
            o.update(from: r, count: residual.count)
        }
        for image in 0..<batch {
            var r0 = 0
            while r0 < height {
                let r1 = min(height, r0 + rowsPerBand)
                let a = max(0, r0 - 1), e = min(height, r1 + 1), n = e - a
                let band = Tensor(uninitialized: [1, n * width, dim])
                band.pointer.update(from: x.pointer + (image * tokens + a * width) * dim, count: n * width * dim)
                // GELU out of place: the C row kernel's in-place form does not vectorise.
                let hidden = Tensor.linear(band, weight: fc1.weight, bias: fc1.bias).gelu()     // [1, n·W, hidden]
                let mixed = Tensor.depthwiseConv3x3Tokens(hidden, weight: conv.weight, bias: conv.bias, height: n,
                                                          width: width).gelu()
                // Rows r0..<r1 of out += mixed rows · W2ᵀ.
                BLAS.sgemm(transB: true, m: (r1 - r0) * width, n: dim, k: hiddenDim,
                           a: mixed.pointer + (r0 - a) * width * hiddenDim, b: fc2.weight.pointer, beta: 1,
                           c: o + (image * tokens + r0 * width) * dim)
                r0 = r1
            }
        }
        return out
    }
}

