// Depthwise convolution (groups == Cin == Cout) as a direct kernel.
//
// With one input channel per output channel the im2col GEMM degenerates into C matrix-vector products
// of length kH·kW, all memory traffic and no reuse. The direct kernel instead works a row at a time: for
// each output row and kernel tap it adds `w · (input row segment)` into the output row. Every inner loop is
// then a contiguous (for stride 1) multiply-add over a row that stays in L1, which vectorises; the valid
// column span of each tap is computed once, so the loops carry no padding branches. Over the columns where
// every tap of a kernel row is valid, up to four taps are fused into one pass, so the output row is loaded and
// stored once per four taps instead of once per tap. Planes (n, c) are independent and run in parallel.
// Backward: for stride 1 the input gradient is itself a depthwise convolution (of the output gradient with the
// flipped kernel and padding dilation·(k − 1) − padding) and reuses the forward kernel; other strides scatter
// row-wise. The weight gradient accumulates per-tap row products that are reduced once per channel.
// Stride 1 with dilation 1 (every depthwise convolution of the models but DRSformer's dilated ones) runs the C
// row kernels of VectorRows — portable, AVX2 + FMA or AVX-512 — which the fused inference paths call too; the
// Swift loops below remain for strided and dilated geometries.

import Foundation

extension Tensor {
    /// The depthwise branch of `conv2d`. `geo.channels` is C.
    /// - x: `[N, C, H, W]`; weight: `[C, 1, kH, kW]`; bias: `[C]` or nil. Returns `[N, C, Ho, Wo]`.
    static func depthwiseConv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry geo: ConvGeometry) -> Tensor {
        let n = x.shape[0], c = geo.channels
        let out = Tensor(uninitialized: [n, c, geo.outH, geo.outW])
        depthwiseForward(x.pointer, weight.pointer, bias?.pointer, out.pointer, batch: n, geo)
        let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        return out.recorded("depthwiseConv2d", inputs) { g in
            var gx: Tensor? = nil, gw: Tensor? = nil
            if x.requiresGrad {
                let t = Tensor(uninitialized: x.shape)
                depthwiseBackwardInput(g.pointer, weight.pointer, t.pointer, batch: n, geo)
                gx = t
            }
            if weight.requiresGrad {
                let t = Tensor(uninitialized: weight.shape)
                depthwiseBackwardWeight(g.pointer, x.pointer, t.pointer, batch: n, geo)
                gw = t
            }
            var grads: [Tensor?] = [gx, gw]
            if let bias {
                grads.append(bias.requiresGrad ? channelSums(g, batch: n, channels: c, planeSize: geo.outPlaneSize) : nil)
            }
            return grads
        }
    }

    /// The valid output-column span and input-column offset of every kernel column, computed once per call.
    private static func columnTaps(_ geo: ConvGeometry) -> [(lo: Int, hi: Int, offset: Int)] {
        (0..<geo.kernelW).map { kj in
            let (lo, hi) = geo.columnSpan(kj)
            return (lo, hi, kj * geo.dilation - geo.padW)
        }
    }

    /// `o[ow] += Σ_kj w[kj] · src[ow·s + offset_kj]` over each tap's valid span: one kernel row's contribution
    /// to one output row. `interior` is the span where every tap is valid.
    @inline(__always)
    private static func accumulateKernelRow(
        _ o: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
        _ taps: UnsafeBufferPointer<(lo: Int, hi: Int, offset: Int)>, interior: (lo: Int, hi: Int), stride s: Int
    ) {
        let kW = taps.count
        guard s == 1 && interior.lo < interior.hi else {
            for kj in 0..<kW {
                let (lo, hi, offset) = taps[kj]
                let wv = w[kj], seg = src + offset
                if s == 1 {
                    for ow in lo..<hi { o[ow] += wv * seg[ow] }
                } else {
                    for ow in lo..<hi { o[ow] += wv * seg[ow &* s] }
                }
            }
            return
        }
        // Edges: the columns where some taps fall into the padding, one tap at a time.
        for kj in 0..<kW {
            let (lo, hi, offset) = taps[kj]
            let wv = w[kj], seg = src + offset
            for ow in lo..<interior.lo { o[ow] += wv * seg[ow] }
            for ow in interior.hi..<hi { o[ow] += wv * seg[ow] }
        }
        // Interior: up to four taps per pass over the output row.
        let lo = interior.lo, hi = interior.hi
        var kj = 0
        while kj < kW {
            switch kW - kj {
            case 1:
                let w0 = w[kj], a = src + taps[kj].offset
                for ow in lo..<hi { o[ow] += w0 * a[ow] }
                kj += 1
            case 2:
                let w0 = w[kj], w1 = w[kj + 1], a = src + taps[kj].offset, b = src + taps[kj + 1].offset
                for ow in lo..<hi { o[ow] += w0 * a[ow] + w1 * b[ow] }
                kj += 2
            case 3, 5:
                let w0 = w[kj], w1 = w[kj + 1], w2 = w[kj + 2]
                let a = src + taps[kj].offset, b = src + taps[kj + 1].offset, c = src + taps[kj + 2].offset
                for ow in lo..<hi { o[ow] += w0 * a[ow] + w1 * b[ow] + w2 * c[ow] }
                kj += 3
            default:
                let w0 = w[kj], w1 = w[kj + 1], w2 = w[kj + 2], w3 = w[kj + 3]
                let a = src + taps[kj].offset, b = src + taps[kj + 1].offset
                let c = src + taps[kj + 2].offset, d = src + taps[kj + 3].offset
                for ow in lo..<hi { o[ow] += w0 * a[ow] + w1 * b[ow] + w2 * c[ow] + w3 * d[ow] }
                kj += 4
            }
        }
    }

    /// out[n, c, oh, :] = bias[c] + Σ_taps w[c, ki, kj] · x[n, c, ih(oh, ki), iw(:, kj)].
    /// `geo` may have a negative padding (the input-gradient convolution of a padded forward does).
    static func depthwiseForward(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
        _ out: UnsafeMutablePointer<Float>, batch: Int, _ geo: ConvGeometry, relu: Bool = false
    ) {
        let c = geo.channels, H = geo.height, W = geo.width, Ho = geo.outH, Wo = geo.outW
        let kH = geo.kernelH, kW = geo.kernelW, s = geo.stride, p = geo.padH, dil = geo.dilation
        let taps = columnTaps(geo)
        let interior = (lo: taps.map(\.lo).max()!, hi: taps.map(\.hi).min()!)
        // Stride 1, dilation 1: the C row kernel (one definition with the fused inference paths).
        let unit = s == 1 && dil == 1
        taps.withUnsafeBufferPointer { taps in
            Parallel.forEach(batch * c, cost: geo.outPlaneSize * geo.kernelArea) { r in
                let rows = UnsafeMutablePointer<UnsafePointer<Float>?>.allocate(capacity: kH)
                defer { rows.deallocate() }
                for plane in r {
                    let ch = plane % c
                    let src = x + plane * H * W, dst = out + plane * Ho * Wo, wk = w + ch * geo.kernelArea
                    let b = bias?[ch] ?? 0
                    for oh in 0..<Ho {
                        let orow = dst + oh * Wo
                        if unit {
                            // Every kernel row in one pass of the C kernel (nil rows lie in the padding).
                            for ki in 0..<kH {
                                let ih = oh - p + ki
                                rows[ki] = ih < 0 || ih >= H ? nil : UnsafePointer(src + ih * W)
                            }
                            VectorRows.depthwiseOutputRow(orow, outCount: Wo, rows: rows, kernelH: kH, inCount: W,
                                                          weights: wk, kernelW: kW, padding: geo.padW, bias: b)
                        } else {
                            orow.update(repeating: b, count: Wo)
                            for ki in 0..<kH {
                                let ih = oh * s - p + ki * dil
                                if ih < 0 || ih >= H { continue }
                                accumulateKernelRow(orow, src + ih * W, wk + ki * kW, taps, interior: interior, stride: s)
                            }
                        }
                        if relu { for ow in 0..<Wo { orow[ow] = Swift.max(orow[ow], 0) } }
                    }
                }
            }
        }
    }

    /// A grouped convolution with few channels per group (e.g. DRSformer's `[C, 2, k, k]` convolutions), computed
    /// directly: each output plane accumulates, row by row, the kernel rows of its group's input planes. As
    /// im2col + GEMM it would be one GEMM with M = Cout/groups (often 1) per group: all lowering, no reuse.
    /// `geo.channels` is Cin/groups.
    /// - x: `[N, Cin, H, W]`; w: `[Cout, Cin/groups, kH, kW]`; bias: `[Cout]` or nil; out: `[N, Cout, Ho, Wo]`.
    static func groupedDirectForward(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
        _ out: UnsafeMutablePointer<Float>, batch: Int, groups: Int, coutPerGroup: Int, _ geo: ConvGeometry,
        relu: Bool = false
    ) {
        let cinG = geo.channels, cin = cinG * groups, cout = coutPerGroup * groups
        let H = geo.height, W = geo.width, Ho = geo.outH, Wo = geo.outW
        let kH = geo.kernelH, kW = geo.kernelW, s = geo.stride, p = geo.padH, dil = geo.dilation, kArea = geo.kernelArea
        let taps = columnTaps(geo)
        let interior = (lo: taps.map(\.lo).max()!, hi: taps.map(\.hi).min()!)
        let unit = s == 1 && dil == 1
        taps.withUnsafeBufferPointer { taps in
            Parallel.forEach(batch * cout, cost: geo.outPlaneSize * kArea * cinG) { r in
                for plane in r {
                    let n = plane / cout, oc = plane % cout, g = oc / coutPerGroup
                    let dst = out + plane * Ho * Wo, b = bias?[oc] ?? 0
                    let src0 = x + (n * cin + g * cinG) * H * W, wk0 = w + oc * cinG * kArea
                    for oh in 0..<Ho {
                        let orow = dst + oh * Wo
                        orow.update(repeating: b, count: Wo)
                        for ic in 0..<cinG {
                            let src = src0 + ic * H * W, wk = wk0 + ic * kArea
                            for ki in 0..<kH {
                                let ih = oh * s - p + ki * dil
                                if ih < 0 || ih >= H { continue }
                                if unit {
                                    VectorRows.depthwiseRow(orow, outCount: Wo, src + ih * W, inCount: W,
                                                            weights: wk + ki * kW, kernel: kW, padding: geo.padW)
                                } else {
                                    accumulateKernelRow(orow, src + ih * W, wk + ki * kW, taps, interior: interior, stride: s)
                                }
                            }
                        }
                        if relu { for ow in 0..<Wo { orow[ow] = Swift.max(orow[ow], 0) } }
                    }
                }
            }
        }
    }

    /// gx[n, c, ih, iw] = Σ over the outputs that read (ih, iw) of w · g. Stride 1: a depthwise convolution of g
    /// with the flipped kernel. Otherwise the forward's row loops with the multiply-add reversed (scatter into
    /// the input row).
    static func depthwiseBackwardInput(
        _ g: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ gx: UnsafeMutablePointer<Float>, batch: Int, _ geo: ConvGeometry
    ) {
        if geo.stride == 1 {
            let kArea = geo.kernelArea
            let flipped = UnsafeMutablePointer<Float>.allocate(capacity: geo.channels * kArea)
            defer { flipped.deallocate() }
            for ch in 0..<geo.channels {
                for t in 0..<kArea { flipped[ch * kArea + t] = w[ch * kArea + kArea - 1 - t] }
            }
            let transposed = ConvGeometry(
                channels: geo.channels, height: geo.outH, width: geo.outW, kernelH: geo.kernelH, kernelW: geo.kernelW,
                stride: 1, padding: geo.dilation * (geo.kernelH - 1) - geo.padH, dilation: geo.dilation,
                paddingW: geo.dilation * (geo.kernelW - 1) - geo.padW)
            assert(transposed.outH == geo.height && transposed.outW == geo.width, "depthwise backward: geometry mismatch")
            depthwiseForward(g, flipped, nil, gx, batch: batch, transposed)
            return
        }
        let c = geo.channels, H = geo.height, W = geo.width, Ho = geo.outH, Wo = geo.outW
        let kH = geo.kernelH, kW = geo.kernelW, s = geo.stride, p = geo.padH, dil = geo.dilation
        let taps = columnTaps(geo)
        taps.withUnsafeBufferPointer { taps in
            Parallel.forEach(batch * c, cost: geo.outPlaneSize * geo.kernelArea) { r in
                for plane in r {
                    let ch = plane % c
                    let dst = gx + plane * H * W, src = g + plane * Ho * Wo, wk = w + ch * geo.kernelArea
                    dst.update(repeating: 0, count: H * W)
                    for oh in 0..<Ho {
                        let grow = src + oh * Wo
                        for ki in 0..<kH {
                            let ih = oh * s - p + ki * dil
                            if ih < 0 || ih >= H { continue }
                            let drow = dst + ih * W
                            for kj in 0..<kW {
                                let (lo, hi, offset) = taps[kj]
                                let wv = wk[ki * kW + kj]
                                let seg = drow + offset
                                if s == 1 {
                                    for ow in lo..<hi { seg[ow] += wv * grow[ow] }
                                } else {
                                    for ow in lo..<hi { seg[ow &* s] += wv * grow[ow] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// gw[c, ki, kj] = Σ_n Σ_(oh, ow) g[n, c, oh, ow] · x[n, c, ih, iw]. A dot product per tap does not vectorise
    /// (Float sums cannot be reassociated), so each tap accumulates element-wise into its own row of a
    /// `[kH·kW, Wo]` scratch block, reduced once per channel. Parallel over channels.
    static func depthwiseBackwardWeight(
        _ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ gw: UnsafeMutablePointer<Float>, batch: Int, _ geo: ConvGeometry
    ) {
        let c = geo.channels, H = geo.height, W = geo.width, Ho = geo.outH, Wo = geo.outW
        let kH = geo.kernelH, kW = geo.kernelW, s = geo.stride, p = geo.padH, dil = geo.dilation
        let kArea = geo.kernelArea
        if s == 1 && dil == 1 {
            // The C plane kernel: one 16-lane accumulator per tap over the plane, added in Double.
            Parallel.forEach(c, cost: batch * geo.outPlaneSize * kArea) { r in
                withUnsafeTemporaryAllocation(of: Double.self, capacity: kArea) { buffer in
                    let acc = buffer.baseAddress!
                    for ch in r {
                        acc.update(repeating: 0, count: kArea)
                        for n in 0..<batch {
                            let plane = n * c + ch
                            VectorRows.depthwisePlaneWeightGradient(
                                acc, g + plane * Ho * Wo, outH: Ho, outW: Wo, x + plane * H * W, height: H, width: W,
                                kernelH: kH, kernelW: kW, padH: p, padW: geo.padW)
                        }
                        for tap in 0..<kArea { gw[ch * kArea + tap] = Float(acc[tap]) }
                    }
                }
            }
            return
        }
        let taps = columnTaps(geo)
        taps.withUnsafeBufferPointer { taps in
            Parallel.forEach(c, cost: batch * geo.outPlaneSize * kArea) { r in
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: kArea * Wo)
                defer { scratch.deallocate() }
                for ch in r {
                    scratch.update(repeating: 0, count: kArea * Wo)
                    for n in 0..<batch {
                        let plane = n * c + ch
                        let xs = x + plane * H * W, gs = g + plane * Ho * Wo
                        for oh in 0..<Ho {
                            let grow = gs + oh * Wo
                            for ki in 0..<kH {
                                let ih = oh * s - p + ki * dil
                                if ih < 0 || ih >= H { continue }
                                let xrow = xs + ih * W
                                for kj in 0..<kW {
                                    let (lo, hi, offset) = taps[kj]
                                    let acc = scratch + (ki * kW + kj) * Wo
                                    let seg = xrow + offset
                                    if s == 1 {
                                        for ow in lo..<hi { acc[ow] += grow[ow] * seg[ow] }
                                    } else {
                                        for ow in lo..<hi { acc[ow] += grow[ow] * seg[ow &* s] }
                                    }
                                }
                            }
                        }
                    }
                    for tap in 0..<kArea {
                        let acc = scratch + tap * Wo
                        var total: Double = 0
                        for ow in 0..<Wo { total += Double(acc[ow]) }
                        gw[ch * kArea + tap] = Float(total)
                    }
                }
            }
        }
    }
}

// MARK: - Pointer-level entry points for fused inference paths

/// The direct convolution kernels over raw NCHW buffers, for models' no-grad paths that place inputs and outputs
/// themselves (e.g. writing two convolutions' outputs into the halves of one buffer instead of concatenating).
/// Nothing is recorded; stride 1, dilation 1, zero padding `kernel / 2` ("same" size), square odd kernels.
package enum ConvolutionKernels {
    /// Depthwise convolution of `channels` planes, optionally followed by ReLU.
    ///
    /// - Parameters:
    ///   - input: `[channels, height, width]`, contiguous.
    ///   - weight: `[channels, 1, kernel, kernel]`.
    ///   - bias: `[channels]` or nil.
    ///   - output: `[channels, height, width]`, contiguous; must not overlap `input`.
    package static func depthwise(
        input: UnsafePointer<Float>, channels: Int, height: Int, width: Int, weight: UnsafePointer<Float>,
        bias: UnsafePointer<Float>?, kernel: Int, relu: Bool, output: UnsafeMutablePointer<Float>
    ) {
        precondition(kernel % 2 == 1 && channels > 0 && height > 0 && width > 0,
                     "ConvolutionKernels.depthwise: odd kernel and positive sizes required (kernel \(kernel), \(channels)×\(height)×\(width))")
        let geo = ConvGeometry(channels: channels, height: height, width: width, kernelH: kernel, kernelW: kernel,
                               stride: 1, padding: kernel / 2, dilation: 1)
        Tensor.depthwiseForward(input, weight, bias, output, batch: 1, geo, relu: relu)
    }

    /// Grouped convolution with `inPerGroup` input and `outPerGroup` output channels per group (computed directly;
    /// meant for a few channels per group), optionally followed by ReLU.
    ///
    /// - Parameters:
    ///   - input: `[groups·inPerGroup, height, width]`, contiguous.
    ///   - weight: `[groups·outPerGroup, inPerGroup, kernel, kernel]`.
    ///   - bias: `[groups·outPerGroup]` or nil.
    ///   - output: `[groups·outPerGroup, height, width]`, contiguous; must not overlap `input`.
    package static func grouped(
        input: UnsafePointer<Float>, groups: Int, inPerGroup: Int, outPerGroup: Int, height: Int, width: Int,
        weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, kernel: Int, relu: Bool,
        output: UnsafeMutablePointer<Float>
    ) {
        precondition(kernel % 2 == 1 && groups > 0 && inPerGroup > 0 && outPerGroup > 0 && height > 0 && width > 0,
                     "ConvolutionKernels.grouped: odd kernel and positive sizes required")
        let geo = ConvGeometry(channels: inPerGroup, height: height, width: width, kernelH: kernel, kernelW: kernel,
                               stride: 1, padding: kernel / 2, dilation: 1)
        Tensor.groupedDirectForward(input, weight, bias, output, batch: 1, groups: groups, coutPerGroup: outPerGroup,
                                    geo, relu: relu)
    }
}
