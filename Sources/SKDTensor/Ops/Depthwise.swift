// Depthwise convolution (groups == Cin == Cout) as a direct kernel.
//
// With one input channel per output channel the im2col GEMM degenerates into C matrix-vector products
// of length kH·kW, all memory traffic and no reuse. The direct kernel instead works a row at a time: for
// each output row and kernel tap it adds `w · (input row segment)` into the output row. Every inner loop is
// then a contiguous (for stride 1) multiply-add over a row that stays in L1, which vectorises; the valid
// column span of each tap is computed once, so the loops carry no padding branches. Planes (n, c) are
// independent and run in parallel. The backward passes use the same row-wise form: the input gradient is the
// transposed scatter, and the weight gradient accumulates per-tap row products that are reduced once per
// channel.

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
            return (lo, hi, kj * geo.dilation - geo.padding)
        }
    }

    /// out[n, c, oh, :] = bias[c] + Σ_taps w[c, ki, kj] · x[n, c, ih(oh, ki), iw(:, kj)].
    static func depthwiseForward(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
        _ out: UnsafeMutablePointer<Float>, batch: Int, _ geo: ConvGeometry
    ) {
        let c = geo.channels, H = geo.height, W = geo.width, Ho = geo.outH, Wo = geo.outW
        let kH = geo.kernelH, kW = geo.kernelW, s = geo.stride, p = geo.padding, dil = geo.dilation
        let taps = columnTaps(geo)
        taps.withUnsafeBufferPointer { taps in
            Parallel.forEach(batch * c, cost: geo.outPlaneSize * geo.kernelArea) { r in
                for plane in r {
                    let ch = plane % c
                    let src = x + plane * H * W, dst = out + plane * Ho * Wo, wk = w + ch * geo.kernelArea
                    let b = bias?[ch] ?? 0
                    for oh in 0..<Ho {
                        let orow = dst + oh * Wo
                        orow.update(repeating: b, count: Wo)
                        for ki in 0..<kH {
                            let ih = oh * s - p + ki * dil
                            if ih < 0 || ih >= H { continue }
                            let irow = src + ih * W
                            for kj in 0..<kW {
                                let (lo, hi, offset) = taps[kj]
                                let wv = wk[ki * kW + kj]
                                let seg = irow + offset
                                if s == 1 {
                                    for ow in lo..<hi { orow[ow] += wv * seg[ow] }
                                } else {
                                    for ow in lo..<hi { orow[ow] += wv * seg[ow &* s] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// gx[n, c, ih, iw] = Σ over the outputs that read (ih, iw) of w · g: the forward's row loops with the
    /// multiply-add reversed (scatter into the input row).
    static func depthwiseBackwardInput(
        _ g: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ gx: UnsafeMutablePointer<Float>, batch: Int, _ geo: ConvGeometry
    ) {
        let c = geo.channels, H = geo.height, W = geo.width, Ho = geo.outH, Wo = geo.outW
        let kH = geo.kernelH, kW = geo.kernelW, s = geo.stride, p = geo.padding, dil = geo.dilation
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
        let kH = geo.kernelH, kW = geo.kernelW, s = geo.stride, p = geo.padding, dil = geo.dilation
        let kArea = geo.kernelArea
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
