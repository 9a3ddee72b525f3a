// The LeFF depthwise convolution directly on the token layout. Uformer keeps its activations as tokens
// `[B, H·W, C]`; an NCHW convolution would need a transpose of the (4×-wide) hidden tokens before and after it, in
// both passes. Channels-last, the inner loop runs over contiguous channels and vectorises.

import CSKDKernels
import SKDTensor

extension Tensor {
    /// A 3×3 depthwise convolution with zero padding 1 and stride 1 on a token map: the same function as
    /// `Conv2d(C, C, 3, padding: 1, groups: C)` applied to the tokens viewed as a `[B, C, H, W]` map.
    ///
    /// - Parameters:
    ///   - x: `[B, H·W, C]` tokens, row-major over (h, w).
    ///   - weight: `[C, 1, 3, 3]` (the PyTorch depthwise layout).
    ///   - bias: `[C]`, or `nil`.
    ///   - height: `H`.
    ///   - width: `W`.
    /// - Returns: `[B, H·W, C]`.
    package static func depthwiseConv3x3Tokens(_ x: Tensor, weight: Tensor, bias: Tensor?, height: Int, width: Int) -> Tensor {
        precondition(x.rank == 3 && x.shape[1] == height * width,
                     "depthwiseConv3x3Tokens: tokens \(x.shape) are not [B, \(height)·\(width), C]")
        let channels = x.shape[2], batch = x.shape[0]
        precondition(weight.shape == [channels, 1, 3, 3],
                     "depthwiseConv3x3Tokens: weight \(weight.shape) is not [\(channels), 1, 3, 3]")
        if let bias { precondition(bias.shape == [channels], "depthwiseConv3x3Tokens: bias \(bias.shape) is not [\(channels)]") }
        let geometry = TokenGrid(batch: batch, height: height, width: width, channels: channels)
        let taps = transposedTaps(weight, channels: channels)
        let out = Tensor(uninitialized: x.shape)
        geometry.correlate(x.pointer, taps: taps.pointer, bias: bias?.pointer, into: out.pointer, flipped: false)
        let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        return out.recorded("depthwiseConv3x3Tokens", inputs) { g in
            var grads: [Tensor?] = []
            if x.requiresGrad {
                let gx = Tensor(uninitialized: x.shape)
                geometry.correlate(g.pointer, taps: taps.pointer, bias: nil, into: gx.pointer, flipped: true)
                grads.append(gx)
            } else { grads.append(nil) }
            grads.append(weight.requiresGrad ? geometry.weightGradient(input: x.pointer, grad: g.pointer) : nil)
            if let bias { grads.append(bias.requiresGrad ? g.reshaped([batch * height * width, channels]).sum(axis: 0) : nil) }
            return grads
        }
    }

    /// `[9, C]`: the kernel taps with channels innermost.
    private static func transposedTaps(_ weight: Tensor, channels: Int) -> Tensor {
        let t = Tensor(uninitialized: [9, channels])
        for c in 0..<channels { for k in 0..<9 { t.pointer[k * channels + c] = weight.pointer[c * 9 + k] } }
        return t
    }
}

/// The extents of a token map and the loops of the channels-last 3×3 depthwise convolution.
private struct TokenGrid {
    let batch: Int, height: Int, width: Int, channels: Int

    /// `out[p] = bias + Σₖ taps[k] · in[p + offset(k)]` (forward), or with `flipped`,
    /// `out[p] = Σₖ taps[k] · in[p − offset(k)]` (the input gradient); zero outside the map. One output row at a
    /// time through the C row kernel (`skd_token_depthwise3x3_row`: channels as vector lanes, AVX2/AVX-512 variants).
    func correlate(_ input: UnsafeMutablePointer<Float>, taps: UnsafeMutablePointer<Float>, bias: UnsafeMutablePointer<Float>?,
                   into out: UnsafeMutablePointer<Float>, flipped: Bool) {
        let (h, w, c) = (height, width, channels)
        Parallel.forEach(batch * h, cost: w * c * 9) { rows in
            for row in rows {
                let b = row / h, y = row % h
                // rows[ky] = input row y + ky − 1 (forward) or y − ky + 1 (gradient); nil outside the map.
                func source(_ ky: Int) -> UnsafePointer<Float>? {
                    let yy = flipped ? y - ky + 1 : y + ky - 1
                    return yy >= 0 && yy < h ? UnsafePointer(input + (b * h + yy) * w * c) : nil
                }
                // The three row pointers on the stack: no allocation per output row.
                withUnsafeTemporaryAllocation(of: UnsafePointer<Float>?.self, capacity: 3) { rowPointers in
                    for ky in 0..<3 { rowPointers[ky] = source(ky) }
                    skd_token_depthwise3x3_row(out + (b * h + y) * w * c, rowPointers.baseAddress, w, c, taps,
                                               bias, flipped ? 1 : 0)
                }
            }
        }
    }

    /// `[C, 1, 3, 3]`: `Σ_p grad[p] · input[p + offset(k)]` per channel and tap, accumulated per chunk of rows and
    /// then summed, so the chunks never write the same memory.
    func weightGradient(input: UnsafeMutablePointer<Float>, grad: UnsafeMutablePointer<Float>) -> Tensor {
        let (h, w, c) = (height, width, channels)
        let rows = batch * h
        let chunks = max(1, min(Parallel.threads, rows))
        let partial = Tensor(zeros: [chunks, 9 * c])
        Parallel.forEach(chunks, cost: rows / chunks * w * c * 9) { range in
            for chunk in range {
                let acc = partial.pointer + chunk * 9 * c
                for row in rows * chunk / chunks..<rows * (chunk + 1) / chunks {
                    let b = row / h, y = row % h
                    for x in 0..<w {
                        let g = grad + ((b * h + y) * w + x) * c
                        for ky in 0..<3 {
                            let yy = y + ky - 1
                            guard yy >= 0 && yy < h else { continue }
                            for kx in 0..<3 {
                                let xx = x + kx - 1
                                guard xx >= 0 && xx < w else { continue }
                                let src = input + ((b * h + yy) * w + xx) * c, a = acc + (ky * 3 + kx) * c
                                for ch in 0..<c { a[ch] += g[ch] * src[ch] }
                            }
                        }
                    }
                }
            }
        }
        let out = Tensor(uninitialized: [c, 1, 3, 3])
        for ch in 0..<c {
            for k in 0..<9 {
                var s: Float = 0
                for chunk in 0..<chunks { s += partial.pointer[chunk * 9 * c + k * c + ch] }
                out.pointer[ch * 9 + k] = s
            }
        }
        return out
    }
}
