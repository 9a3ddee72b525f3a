// Pixel shuffle and unshuffle (PyTorch's `nn.PixelShuffle` / `nn.PixelUnshuffle`): sub-pixel rearrangement
// between channels and space, used by Restormer's up/down-sampling. The two are inverse permutations, so each
// one's backward is the other.

import Foundation

extension Tensor {
    /// Moves elements between `channels` (`[N, C·r², H, W]`) and `space` (`[N, C, H·r, W·r]`):
    /// `space[n, c, h·r + i, w·r + j] = channels[n, c·r² + i·r + j, h, w]`; `toSpace` picks the direction.
    /// Parallel over the rows of the spatial side, each written (or read) whole by one iteration.
    private static func shuffleKernel(
        channels: UnsafeMutablePointer<Float>, space: UnsafeMutablePointer<Float>,
        n: Int, c: Int, h: Int, w: Int, r: Int, toSpace: Bool
    ) {
        let rows = n * c * h * r, wr = w * r
        Parallel.forEach(rows, cost: wr) { range in
            for row in range {
                // row = ((n·C + c)·H + h)·r + i over the spatial side's rows.
                let i = row % r, hh = (row / r) % h, nc = row / (r * h)
                let spaceRow = space + row * wr
                for j in 0..<r {
                    let plane = channels + ((nc * r * r + i * r + j) * h + hh) * w
                    if toSpace {
                        for x in 0..<w { spaceRow[x &* r &+ j] = plane[x] }
                    } else {
                        for x in 0..<w { plane[x] = spaceRow[x &* r &+ j] }
                    }
                }
            }
        }
    }

    /// Rearranges `[N, C·r², H, W]` into `[N, C, H·r, W·r]` (PyTorch's `PixelShuffle(r)`).
    ///
    /// - Parameter r: the upscale factor, ≥ 1; the channel count must be a multiple of `r²`.
    public func pixelShuffle(_ r: Int) -> Tensor {
        precondition(rank == 4, "pixelShuffle: input must be [N, C·r², H, W], got \(shape)")
        precondition(r >= 1 && shape[1] % (r * r) == 0, "pixelShuffle: \(shape[1]) channels are not a multiple of \(r)² (input \(shape))")
        if r == 1 { return self }
        let n = shape[0], c = shape[1] / (r * r), h = shape[2], w = shape[3]
        let out = Tensor(uninitialized: [n, c, h * r, w * r])
        Tensor.shuffleKernel(channels: pointer, space: out.pointer, n: n, c: c, h: h, w: w, r: r, toSpace: true)
        return out.recorded("pixelShuffle", [self]) { g in [g.pixelUnshuffle(r)] }
    }

    /// Rearranges `[N, C, H·r, W·r]` into `[N, C·r², H, W]` (PyTorch's `PixelUnshuffle(r)`), the inverse of
    /// `pixelShuffle`.
    ///
    /// - Parameter r: the downscale factor, ≥ 1; height and width must be multiples of `r`.
    public func pixelUnshuffle(_ r: Int) -> Tensor {
        precondition(rank == 4, "pixelUnshuffle: input must be [N, C, H·r, W·r], got \(shape)")
        precondition(r >= 1 && shape[2] % r == 0 && shape[3] % r == 0,
                     "pixelUnshuffle: spatial size \(shape[2])×\(shape[3]) is not a multiple of \(r) (input \(shape))")
        if r == 1 { return self }
        let n = shape[0], c = shape[1], h = shape[2] / r, w = shape[3] / r
        let out = Tensor(uninitialized: [n, c * r * r, h, w])
        Tensor.shuffleKernel(channels: out.pointer, space: pointer, n: n, c: c, h: h, w: w, r: r, toSpace: false)
        return out.recorded("pixelUnshuffle", [self]) { g in [g.pixelShuffle(r)] }
    }
}
