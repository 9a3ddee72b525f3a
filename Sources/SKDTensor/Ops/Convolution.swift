// 2-D convolution (PyTorch's `F.conv2d`): im2col + GEMM, with a direct kernel for depthwise convolutions.
//
// The column matrix of a whole 256×256 feature map is ~100 MB (432 rows × 65 536 columns for a 3×3 conv
// over 48 channels); writing it out and streaming it back through the GEMM would cost more than the GEMM.
// So the output rows are processed in bands whose column block fits in cache (`ConvolutionTuning`): the
// GEMM then reads a block im2col has just written, and the one buffer is allocated once per call.
// A 1×1, stride-1, unpadded convolution needs no im2col at all: the input plane *is* the column matrix.

import Foundation

/// Tuning knobs of the convolution kernels (read at every call; not thread-safe to change during one).
package enum ConvolutionTuning {
    /// The size in bytes of the im2col block that one band of output rows is lowered into. A block that fits
    /// in the last-level cache lets the GEMM read back what im2col has just written; a band always holds at
    /// least one output row.
    package static var columnBufferBytes = 4 << 20
}

/// The geometry of one sliding-window product between an image `[channels, height, width]` and its
/// output grid `[outH, outW]`, with PyTorch's output-size formula. Shared by conv2d (image = input),
/// its backward, and convTranspose2d (image = output).
struct ConvGeometry {
    let channels: Int, height: Int, width: Int
    let kernelH: Int, kernelW: Int
    /// Padding of the rows and of the columns. Negative values crop (the transposed geometry of a
    /// depthwise input gradient can have them).
    let stride: Int, padH: Int, padW: Int, dilation: Int
    let outH: Int, outW: Int

    init(channels: Int, height: Int, width: Int, kernelH: Int, kernelW: Int, stride: Int, padding: Int, dilation: Int,
         paddingW: Int? = nil) {
        self.channels = channels; self.height = height; self.width = width
        self.kernelH = kernelH; self.kernelW = kernelW
        self.stride = stride; self.padH = padding; self.padW = paddingW ?? padding; self.dilation = dilation
        outH = (height + 2 * padH - dilation * (kernelH - 1) - 1) / stride + 1
        outW = (width + 2 * padW - dilation * (kernelW - 1) - 1) / stride + 1
    }

    var kernelArea: Int { kernelH * kernelW }
    /// Rows of the column matrix: one per (channel, kernel tap).
    var colRows: Int { channels * kernelArea }
    var planeSize: Int { height * width }
    var outPlaneSize: Int { outH * outW }

    /// The output indices `o` in `0..<outCount` whose input index `o·stride + offset` lies in `0..<extent`.
    /// Hoisting this out of the inner loops is what lets them run branch-free.
    @inline(__always)
    static func validSpan(offset: Int, stride: Int, extent: Int, outCount: Int) -> (lo: Int, hi: Int) {
        let lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride
        let limit = extent - offset
        let hi = limit <= 0 ? 0 : min(outCount, (limit + stride - 1) / stride)
        return (min(lo, hi), hi)
    }

    /// The valid output-column span of kernel column `kj`.
    @inline(__always)
    func columnSpan(_ kj: Int) -> (lo: Int, hi: Int) {
        ConvGeometry.validSpan(offset: kj * dilation - padW, stride: stride, extent: width, outCount: outW)
    }

    /// How many output rows one band holds so that its column block, and its block of an output with
    /// `outputChannels` channels, each stay within the tuning budget.
    func bandRows(outputChannels: Int = 0) -> Int {
        let bytesPerRow = max(1, max(colRows, outputChannels) * outW * MemoryLayout<Float>.size)
        return max(1, min(outH, ConvolutionTuning.columnBufferBytes / bytesPerRow))
    }
}

// MARK: - Kernels (internal)

extension Tensor {
    /// Lowers output rows `rows` of one image `src` (`[channels, height, width]`) into `col`
    /// (`[channels·kH·kW, rows.count·outW]`, row-major): row (c, ki, kj) holds, for every output position of
    /// the band, the input value under that tap (zero in the padding). Parallel over column-matrix rows.
    static func im2col(_ src: UnsafePointer<Float>, _ geo: ConvGeometry, rows: Range<Int>, into col: UnsafeMutablePointer<Float>) {
        let bandCols = rows.count * geo.outW
        let kArea = geo.kernelArea, kW = geo.kernelW
        let H = geo.height, W = geo.width, Wo = geo.outW
        let s = geo.stride, pH = geo.padH, pW = geo.padW, dil = geo.dilation
        Parallel.forEach(geo.colRows, cost: bandCols) { r in
            for row in r {
                let c = row / kArea, tap = row % kArea, ki = tap / kW, kj = tap % kW
                let plane = src + c * H * W
                let offW = kj * dil - pW
                let (lo, hi) = geo.columnSpan(kj)
                var d = col + row * bandCols
                for oh in rows {
                    let ih = oh * s - pH + ki * dil
                    if ih < 0 || ih >= H || lo >= hi {
                        d.update(repeating: 0, count: Wo)
                    } else {
                        let irow = plane + ih * W + offW
                        if lo > 0 { d.update(repeating: 0, count: lo) }
                        if s == 1 {
                            (d + lo).update(from: irow + lo, count: hi - lo)
                        } else {
                            for ow in lo..<hi { d[ow] = irow[ow &* s] }
                        }
                        if hi < Wo { (d + hi).update(repeating: 0, count: Wo - hi) }
                    }
                    d += Wo
                }
            }
        }
    }

    /// The adjoint of `im2col`: adds every entry of `col` (`[channels·kH·kW, rows.count·outW]`) into the
    /// image position it was read from in `dst` (`[channels, height, width]`). Parallel over channels, which
    /// never write the same image plane.
    static func col2im(_ col: UnsafePointer<Float>, _ geo: ConvGeometry, rows: Range<Int>, addingInto dst: UnsafeMutablePointer<Float>) {
        let bandCols = rows.count * geo.outW
        let kArea = geo.kernelArea, kW = geo.kernelW, kH = geo.kernelH
        let H = geo.height, W = geo.width, Wo = geo.outW
        let s = geo.stride, pH = geo.padH, pW = geo.padW, dil = geo.dilation
        Parallel.forEach(geo.channels, cost: kArea * bandCols) { r in
            for c in r {
                let plane = dst + c * H * W
                for ki in 0..<kH {
                    for kj in 0..<kW {
                        let offW = kj * dil - pW
                        let (lo, hi) = geo.columnSpan(kj)
                        if lo >= hi { continue }
                        var sp = col + (c * kArea + ki * kW + kj) * bandCols
                        for oh in rows {
                            let ih = oh * s - pH + ki * dil
                            if ih >= 0 && ih < H {
                                let drow = plane + ih * W + offW
                                if s == 1 {
                                    for ow in lo..<hi { drow[ow] += sp[ow] }
                                } else {
                                    for ow in lo..<hi { drow[ow &* s] += sp[ow] }
                                }
                            }
                            sp += Wo
                        }
                    }
                }
            }
        }
    }

    /// Per-channel sums of `g` (`[N, C, ...]` with `planeSize` elements per plane), accumulated in Double:
    /// the bias gradient of the convolutions.
    static func channelSums(_ g: Tensor, batch: Int, channels: Int, planeSize: Int) -> Tensor {
        let out = Tensor(uninitialized: [channels])
        let src = g.pointer, dst = out.pointer
        Parallel.forEach(channels, cost: batch * planeSize) { r in
            for c in r {
                var acc: Double = 0
                for n in 0..<batch {
                    let plane = src + (n * channels + c) * planeSize
                    // Float partial sums of one plane vectorise; Double across planes keeps big maps accurate.
                    var part: Float = 0
                    for i in 0..<planeSize { part += plane[i] }
                    acc += Double(part)
                }
                dst[c] = Float(acc)
            }
        }
        return out
    }
}

// MARK: - conv2d

extension Tensor {
    /// 2-D convolution, as PyTorch's `F.conv2d` (cross-correlation, zero padding on all four sides).
    ///
    /// - Parameters:
    ///   - x: `[N, Cin, H, W]`.
    ///   - weight: `[Cout, Cin / groups, kH, kW]`.
    ///   - bias: `[Cout]`, or `nil`.
    ///   - stride: the step of the window, ≥ 1.
    ///   - padding: zeros added on every side, ≥ 0.
    ///   - dilation: the spacing between kernel taps, ≥ 1.
    ///   - groups: Cin and Cout are split into this many groups, each convolved separately.
    /// - Returns: `[N, Cout, Ho, Wo]` with `Ho = (H + 2·padding − dilation·(kH − 1) − 1) / stride + 1`
    ///   (and `Wo` alike).
    ///
    /// A depthwise convolution (`groups == Cin == Cout`) runs a direct kernel, and so does the forward of a grouped
    /// one with at most 4 input and output channels per group; all others run im2col + GEMM per sample and group
    /// (a 1×1, stride-1, unpadded one skips the im2col).
    public static func conv2d(
        _ x: Tensor, weight: Tensor, bias: Tensor? = nil,
        stride: Int = 1, padding: Int = 0, dilation: Int = 1, groups: Int = 1
    ) -> Tensor {
        precondition(x.rank == 4, "conv2d: input must be [N, Cin, H, W], got \(x.shape)")
        precondition(weight.rank == 4, "conv2d: weight must be [Cout, Cin/groups, kH, kW], got \(weight.shape)")
        precondition(stride >= 1 && padding >= 0 && dilation >= 1 && groups >= 1,
                     "conv2d: invalid stride \(stride), padding \(padding), dilation \(dilation) or groups \(groups)")
        let n = x.shape[0], cin = x.shape[1], cout = weight.shape[0]
        precondition(cin % groups == 0 && cout % groups == 0,
                     "conv2d: groups \(groups) must divide Cin \(cin) and Cout \(cout)")
        precondition(weight.shape[1] == cin / groups,
                     "conv2d: weight \(weight.shape) expects \(weight.shape[1] * groups) input channels with groups \(groups), input is \(x.shape)")
        if let bias { precondition(bias.count == cout, "conv2d: bias \(bias.shape) for \(cout) output channels") }
        let geo = ConvGeometry(
            channels: cin / groups, height: x.shape[2], width: x.shape[3],
            kernelH: weight.shape[2], kernelW: weight.shape[3], stride: stride, padding: padding, dilation: dilation)
        precondition(geo.outH >= 1 && geo.outW >= 1,
                     "conv2d: input \(x.shape) is smaller than the dilated kernel \(weight.shape) with padding \(padding)")

        if groups == cin && cout == cin {
            return depthwiseConv2d(x, weight: weight, bias: bias, geometry: ConvGeometry(
                channels: cin, height: geo.height, width: geo.width, kernelH: geo.kernelH, kernelW: geo.kernelW,
                stride: stride, padding: padding, dilation: dilation))
        }

        let out = Tensor(uninitialized: [n, cout, geo.outH, geo.outW])
        let lowering = GroupedLowering(geo: geo, batch: n, groups: groups, coutPerGroup: cout / groups)
        if groups > 1 && geo.channels <= 4 && cout / groups <= 4 {
            // A handful of channels per group: the GEMMs would have M ≤ 4; a direct kernel is much faster.
            depthwiseForwardGrouped(x, weight, bias, out, groups: groups, geo: geo)
        } else {
            lowering.forward(x: x.pointer, weight: weight.pointer, bias: bias?.pointer, out: out.pointer)
        }

        let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        return out.recorded("conv2d", inputs) { g in
            let gx = x.requiresGrad ? Tensor(zeros: x.shape) : nil
            let gw = weight.requiresGrad ? Tensor(zeros: weight.shape) : nil
            if gx != nil || gw != nil {
                lowering.backward(x: x.pointer, weight: weight.pointer, gradOut: g.pointer,
                                  gradX: gx?.pointer, gradWeight: gw?.pointer)
            }
            var grads: [Tensor?] = [gx, gw]
            if let bias {
                grads.append(bias.requiresGrad
                    ? channelSums(g, batch: n, channels: cout, planeSize: geo.outPlaneSize) : nil)
            }
            return grads
        }
    }
}

extension Tensor {
    /// The forward of a grouped convolution with ≤ 4 input and output channels per group (see `groupedDirectForward`).
    fileprivate static func depthwiseForwardGrouped(_ x: Tensor, _ weight: Tensor, _ bias: Tensor?, _ out: Tensor,
                                                    groups: Int, geo: ConvGeometry) {
        groupedDirectForward(x.pointer, weight.pointer, bias?.pointer, out.pointer, batch: x.shape[0], groups: groups,
                             coutPerGroup: weight.shape[0] / groups, geo)
    }
}

/// The im2col + GEMM schedule of a (grouped) convolution: `out[n, group] = W_group · col(x[n, group])`,
/// band by band. `geo` describes one group (`channels` = Cin / groups).
struct GroupedLowering {
    let geo: ConvGeometry
    let batch: Int, groups: Int, coutPerGroup: Int

    /// 1×1, stride 1, no padding: the input plane is already the column matrix.
    var isPointwise: Bool { geo.kernelH == 1 && geo.kernelW == 1 && geo.stride == 1 && geo.padH == 0 && geo.padW == 0 }
    var cinTotal: Int { geo.channels * groups }
    var coutTotal: Int { coutPerGroup * groups }
    /// K of the GEMM: one weight row per output channel.
    var k: Int { geo.colRows }

    /// Output-row bands: a band's column block (or, pointwise, its output block) stays within the budget.
    var bandRows: Int { geo.bandRows(outputChannels: coutPerGroup) }

    /// Calls `body(bandRange, col, ldCol)` for every band of one (sample, group): `col` is the band's column
    /// matrix (`[k, rows·outW]` with leading dimension `ldCol`), lowered into `buffer` unless pointwise.
    @inline(__always)
    func forEachBand(image: UnsafePointer<Float>, buffer: UnsafeMutablePointer<Float>?, lower: Bool,
                     _ body: (Range<Int>, UnsafePointer<Float>, Int) -> Void) {
        let rowsPerBand = bandRows
        for oh0 in stride(from: 0, to: geo.outH, by: rowsPerBand) {
            let rows = oh0..<min(geo.outH, oh0 + rowsPerBand)
            if isPointwise {
                body(rows, image + oh0 * geo.outW, geo.outPlaneSize)
            } else {
                if lower { Tensor.im2col(image, geo, rows: rows, into: buffer!) }
                body(rows, UnsafePointer(buffer!), rows.count * geo.outW)
            }
        }
    }

    func allocateBuffer() -> UnsafeMutablePointer<Float>? {
        isPointwise ? nil : .allocate(capacity: geo.colRows * bandRows * geo.outW)
    }

    /// out = W · col (+ bias).
    /// - x: `[N, Cin, H, W]`; weight: `[Cout, Cin/groups, kH, kW]`; bias: `[Cout]`; out: `[N, Cout, Ho, Wo]`.
    func forward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>) {
        let buffer = allocateBuffer()
        defer { buffer?.deallocate() }
        let hw = geo.planeSize, howo = geo.outPlaneSize, wo = geo.outW
        for n in 0..<batch {
            for gi in 0..<groups {
                let xg = x + (n * cinTotal + gi * geo.channels) * hw
                let og = out + (n * coutTotal + gi * coutPerGroup) * howo
                let wg = weight + gi * coutPerGroup * k
                forEachBand(image: xg, buffer: buffer, lower: true) { rows, col, ldCol in
                    let cols = rows.count * wo
                    let c = og + rows.lowerBound * wo
                    if let bias {
                        // Filled band by band, while the block is in cache, and accumulated onto by the GEMM.
                        for oc in 0..<coutPerGroup { (c + oc * howo).update(repeating: bias[gi * coutPerGroup + oc], count: cols) }
                    }
                    BLAS.sgemm(m: coutPerGroup, n: cols, k: k, a: wg, lda: k, b: col, ldb: ldCol,
                               beta: bias == nil ? 0 : 1, c: c, ldc: howo)
                }
            }
        }
    }

    /// gradWeight += gradOut · colᵀ and gradX = col2im(Wᵀ · gradOut); either may be nil. Both outputs must be
    /// zeroed by the caller (they are accumulated into).
    /// - x, gradX: `[N, Cin, H, W]`; weight, gradWeight: `[Cout, Cin/groups, kH, kW]`; gradOut: `[N, Cout, Ho, Wo]`.
    func backward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, gradOut: UnsafePointer<Float>,
                  gradX: UnsafeMutablePointer<Float>?, gradWeight: UnsafeMutablePointer<Float>?) {
        let buffer = allocateBuffer()
        defer { buffer?.deallocate() }
        let hw = geo.planeSize, howo = geo.outPlaneSize, wo = geo.outW
        for n in 0..<batch {
            for gi in 0..<groups {
                let xg = x + (n * cinTotal + gi * geo.channels) * hw
                let gg = gradOut + (n * coutTotal + gi * coutPerGroup) * howo
                let wg = weight + gi * coutPerGroup * k
                forEachBand(image: xg, buffer: buffer, lower: gradWeight != nil) { rows, col, ldCol in
                    let cols = rows.count * wo
                    let gBand = gg + rows.lowerBound * wo
                    if let gradWeight {
                        BLAS.sgemm(transB: true, m: coutPerGroup, n: k, k: cols, a: gBand, lda: howo, b: col, ldb: ldCol,
                                   beta: 1, c: gradWeight + gi * coutPerGroup * k, ldc: k)
                    }
                    if let gradX {
                        let dxg = gradX + (n * cinTotal + gi * geo.channels) * hw
                        if isPointwise {
                            BLAS.sgemm(transA: true, m: k, n: cols, k: coutPerGroup, a: wg, lda: k, b: gBand, ldb: howo,
                                       c: dxg + rows.lowerBound * wo, ldc: hw)
                        } else {
                            // The column block has served the weight gradient; reuse it for the input's.
                            BLAS.sgemm(transA: true, m: k, n: cols, k: coutPerGroup, a: wg, lda: k, b: gBand, ldb: howo,
                                       c: buffer!, ldc: cols)
                            Tensor.col2im(buffer!, geo, rows: rows, addingInto: dxg)
                        }
                    }
                }
            }
        }
    }
}
