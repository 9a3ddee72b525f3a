// The window plumbing of Uformer's LeWin blocks as single strided copies: cyclic shift + window partition in
// one gather, window merge + reverse shift in one scatter, and the relative-position bias + shifted-window mask
// added to the attention logits in one pass (the −100 mask is never materialised as a tensor).

import SKDTensor

extension Tensor {
    /// Cyclically shifts a token map by `−shift` on both spatial axes and cuts it into non-overlapping windows:
    /// `window_partition(torch.roll(x, (−shift, −shift), (1, 2)), window)` of the official Uformer/Swin code.
    ///
    /// - Parameters:
    ///   - height: the token map's height `H`; a multiple of `window`.
    ///   - width: the token map's width `W`; a multiple of `window`.
    ///   - window: the window side `w`.
    ///   - shift: the cyclic shift, `0 ≤ shift < window`.
    /// - Returns: `[B·nW, w², C]` for `self` of shape `[B, H·W, C]`, with `nW = (H/w)·(W/w)`; windows are ordered
    ///   batch-major, then row-major over the window grid, tokens row-major inside a window.
    package func windowPartitioned(height: Int, width: Int, window: Int, shift: Int) -> Tensor {
        precondition(rank == 3 && shape[1] == height * width,
                     "windowPartitioned: tokens \(shape) are not [B, \(height)·\(width), C]")
        precondition(window > 0 && height % window == 0 && width % window == 0,
                     "windowPartitioned: \(height)×\(width) is not a multiple of the window \(window)")
        precondition(shift >= 0 && shift < window, "windowPartitioned: shift \(shift) outside 0..<\(window)")
        let batch = shape[0], channels = shape[2]
        let out = Tensor(uninitialized: [batch * (height / window) * (width / window), window * window, channels])
        Tensor.windowShuffle(tokens: pointer, windows: out.pointer, batch: batch, height: height, width: width,
                             channels: channels, window: window, shift: shift, toWindows: true)
        return out.recorded("windowPartition", [self]) { g in
            [g.windowMerged(batch: batch, height: height, width: width, window: window, shift: shift)]
        }
    }

    /// The inverse of `windowPartitioned`: reassembles windows into a token map and shifts it back by `+shift`
    /// (`torch.roll(window_reverse(windows, w, H, W), (shift, shift), (1, 2))`).
    ///
    /// - Parameters:
    ///   - batch: the batch size `B`.
    ///   - height: the token map's height `H`; a multiple of `window`.
    ///   - width: the token map's width `W`; a multiple of `window`.
    ///   - window: the window side `w`.
    ///   - shift: the cyclic shift the windows were taken with, `0 ≤ shift < window`.
    /// - Returns: `[B, H·W, C]` for `self` of shape `[B·nW, w², C]`.
    package func windowMerged(batch: Int, height: Int, width: Int, window: Int, shift: Int) -> Tensor {
        precondition(window > 0 && height % window == 0 && width % window == 0,
                     "windowMerged: \(height)×\(width) is not a multiple of the window \(window)")
        precondition(shift >= 0 && shift < window, "windowMerged: shift \(shift) outside 0..<\(window)")
        let windowCount = batch * (height / window) * (width / window)
        precondition(rank == 3 && shape[0] == windowCount && shape[1] == window * window,
                     "windowMerged: windows \(shape) are not [\(windowCount), \(window * window), C]")
        let channels = shape[2]
        let out = Tensor(uninitialized: [batch, height * width, channels])
        Tensor.windowShuffle(tokens: out.pointer, windows: pointer, batch: batch, height: height, width: width,
                             channels: channels, window: window, shift: shift, toWindows: false)
        return out.recorded("windowMerge", [self]) { g in
            [g.windowPartitioned(height: height, width: width, window: window, shift: shift)]
        }
    }

    /// Moves tokens between the map layout and the window layout. Window position `(r, c)` of the shifted frame
    /// holds map token `((r + shift) mod H, (c + shift) mod W)` — the same map in both directions, so the two
    /// directions are each other's inverse and adjoint.
    private static func windowShuffle(
        tokens: UnsafeMutablePointer<Float>, windows: UnsafeMutablePointer<Float>,
        batch: Int, height: Int, width: Int, channels: Int, window: Int, shift: Int, toWindows: Bool
    ) {
        let gridW = width / window, gridH = height / window, n = window * window
        Parallel.forEach(batch * height, cost: width * channels) { rows in
            for row in rows {
                let b = row / height, r = row % height
                let sourceRow = (r + shift) % height
                let windowRowBase = (b * gridH + r / window) * gridW
                let inWindowRow = (r % window) * window
                let tokenRow = tokens + ((b * height + sourceRow) * width) * channels
                for c in 0..<width {
                    let sourceCol = (c + shift) % width
                    let w = windows + ((windowRowBase + c / window) * n + inWindowRow + c % window) * channels
                    let t = tokenRow + sourceCol * channels
                    if toWindows { w.update(from: t, count: channels) } else { t.update(from: w, count: channels) }
                }
            }
        }
    }
}

/// The region labels of the official shifted-window attention mask, per window token.
///
/// After the cyclic shift by `−shift`, the last `window` rows (columns) of the map mix the bottom (right) border
/// with the wrapped-around top (left) border; the official code labels rows `[0, H−w)`, `[H−w, H−s)`, `[H−s, H)`
/// (and likewise columns) and masks with −100 every pair of tokens in a window whose labels differ.
struct UformerShiftMask {
    /// `[nW·w²]`: the label of each token, windows row-major over the window grid.
    let labels: [UInt8]
    /// The number of windows per image.
    let windowsPerImage: Int

    init(height: Int, width: Int, window: Int, shift: Int) {
        func label(_ i: Int, _ extent: Int) -> Int { i < extent - window ? 0 : (i < extent - shift ? 1 : 2) }
        let gridH = height / window, gridW = width / window, n = window * window
        var labels = [UInt8](repeating: 0, count: gridH * gridW * n)
        for r in 0..<height {
            for c in 0..<width {
                let w = (r / window) * gridW + c / window
                labels[w * n + (r % window) * window + c % window] = UInt8(label(r, height) * 3 + label(c, width))
            }
        }
        self.labels = labels
        self.windowsPerImage = gridH * gridW
    }
}

extension Tensor {
    /// Adds the relative-position bias and, for shifted windows, the official −100 mask to attention logits:
    /// `(attn + bias) + mask`, in the official order of operations.
    ///
    /// - Parameters:
    ///   - attn: `[B·nW, heads, N, N]` logits, windows batch-major.
    ///   - bias: `[heads, N, N]`.
    ///   - mask: the shifted-window labels, or `nil` for unshifted windows.
    static func addingWindowBias(_ attn: Tensor, _ bias: Tensor, mask: UformerShiftMask?) -> Tensor {
        precondition(attn.rank == 4 && bias.rank == 3 && Array(attn.shape.dropFirst()) == bias.shape,
                     "addingWindowBias: logits \(attn.shape) and bias \(bias.shape) do not match")
        let heads = bias.shape[0], n = bias.shape[1]
        let perWindow = heads * n * n
        let windowCount = attn.shape[0]
        if let mask {
            precondition(windowCount % mask.windowsPerImage == 0 && mask.labels.count == mask.windowsPerImage * n,
                         "addingWindowBias: \(windowCount) windows do not fit a mask of \(mask.windowsPerImage) windows of \(n) tokens")
        }
        let out = Tensor(uninitialized: attn.shape)
        let a = attn.pointer, bp = bias.pointer, o = out.pointer
        mask?.labels.withUnsafeBufferPointer { labels in
            Parallel.forEach(windowCount * heads * n, cost: n) { rows in
                for row in rows {
                    let w = (row / (heads * n)) % mask!.windowsPerImage
                    let i = row % n
                    let rowLabels = labels.baseAddress! + w * n
                    let li = rowLabels[i]
                    let src = a + row * n, dst = o + row * n, bb = bp + (row % (heads * n)) * n
                    for j in 0..<n { dst[j] = (src[j] + bb[j]) + (rowLabels[j] == li ? 0 : -100) }
                }
            }
        }
        if mask == nil {
            Parallel.forEach(windowCount, cost: perWindow) { windows in
                for w in windows {
                    let src = a + w * perWindow, dst = o + w * perWindow
                    for k in 0..<perWindow { dst[k] = src[k] + bp[k] }
                }
            }
        }
        return out.recorded("addingWindowBias", [attn, bias]) { g in
            var gb: Tensor? = nil
            if bias.requiresGrad {
                // The bias is shared by every window: its gradient is the window-sum of the logits' gradient.
                let sum = Tensor(zeros: bias.shape)
                let s = sum.pointer, gp = g.pointer
                Parallel.forEach(perWindow, cost: windowCount) { range in
                    for w in 0..<windowCount {
                        let src = gp + w * perWindow
                        for k in range { s[k] += src[k] }
                    }
                }
                gb = sum
            }
            return [attn.requiresGrad ? g : nil, gb]
        }
    }
}
