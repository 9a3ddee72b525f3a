// Transposed 2-D convolution (PyTorch's `F.conv_transpose2d`, groups 1): the adjoint of conv2d.
//
// Forward is conv2d's input-gradient computation: one GEMM `Wᵀ · x` produces every output contribution as a
// column matrix, and col2im scatters it into the (larger) output. The geometry is conv2d's with the roles
// swapped: the "image" is the transposed convolution's output and the "output grid" is its input. Backward is
// then an ordinary convolution (im2col of the output gradient + GEMM). Input rows are processed in bands so the
// column block stays in cache, as for conv2d.

import Foundation

extension Tensor {
    /// Transposed convolution, as PyTorch's `nn.ConvTranspose2d` with `groups = 1`, `dilation = 1` and no
    /// output padding.
    ///
    /// - Parameters:
    ///   - x: `[N, Cin, H, W]`.
    ///   - weight: `[Cin, Cout, kH, kW]` (PyTorch's ConvTranspose2d layout: input channels first).
    ///   - bias: `[Cout]`, or `nil`.
    ///   - stride: the upsampling step, ≥ 1.
    ///   - padding: rows/columns removed from every side of the full output, ≥ 0.
    /// - Returns: `[N, Cout, (H − 1)·stride − 2·padding + kH, (W − 1)·stride − 2·padding + kW]`.
    public static func convTranspose2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0) -> Tensor {
        precondition(x.rank == 4, "convTranspose2d: input must be [N, Cin, H, W], got \(x.shape)")
        precondition(weight.rank == 4 && weight.shape[0] == x.shape[1],
                     "convTranspose2d: weight must be [Cin, Cout, kH, kW] with Cin = \(x.shape[1]), got \(weight.shape)")
        precondition(stride >= 1 && padding >= 0, "convTranspose2d: invalid stride \(stride) or padding \(padding)")
        let n = x.shape[0], cin = x.shape[1], h = x.shape[2], w = x.shape[3]
        let cout = weight.shape[1], kH = weight.shape[2], kW = weight.shape[3]
        if let bias { precondition(bias.count == cout, "convTranspose2d: bias \(bias.shape) for \(cout) output channels") }
        let outH = (h - 1) * stride - 2 * padding + kH, outW = (w - 1) * stride - 2 * padding + kW
        precondition(outH >= 1 && outW >= 1,
                     "convTranspose2d: input \(x.shape) with kernel \(weight.shape), stride \(stride), padding \(padding) gives an empty output")
        let geo = ConvGeometry(channels: cout, height: outH, width: outW, kernelH: kH, kernelW: kW,
                               stride: stride, padding: padding, dilation: 1)
        assert(geo.outH == h && geo.outW == w, "convTranspose2d: geometry mismatch")
        let m = geo.colRows, hw = h * w

        let out = Tensor(uninitialized: [n, cout, outH, outW])
        let rowsPerBand = geo.bandRows()
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: m * rowsPerBand * w)
        defer { buffer.deallocate() }
        let xp = x.pointer, wp = weight.pointer, op = out.pointer
        for s in 0..<n {
            let dst = op + s * cout * geo.planeSize
            for c in 0..<cout {
                (dst + c * geo.planeSize).update(repeating: bias?.pointer[c] ?? 0, count: geo.planeSize)
            }
            for r0 in Swift.stride(from: 0, to: h, by: rowsPerBand) {
                let rows = r0..<Swift.min(h, r0 + rowsPerBand), cols = rows.count * w
                BLAS.sgemm(transA: true, m: m, n: cols, k: cin, a: wp, lda: m, b: xp + s * cin * hw + r0 * w, ldb: hw,
                           c: buffer, ldc: cols)
                col2im(buffer, geo, rows: rows, addingInto: dst)
            }
        }

        let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        return out.recorded("convTranspose2d", inputs) { g in
            let gx = x.requiresGrad ? Tensor(uninitialized: x.shape) : nil
            let gw = weight.requiresGrad ? Tensor(zeros: weight.shape) : nil
            if gx != nil || gw != nil {
                let buffer = UnsafeMutablePointer<Float>.allocate(capacity: m * rowsPerBand * w)
                defer { buffer.deallocate() }
                let xp = x.pointer, wp = weight.pointer, gp = g.pointer
                for s in 0..<n {
                    for r0 in Swift.stride(from: 0, to: h, by: rowsPerBand) {
                        let rows = r0..<Swift.min(h, r0 + rowsPerBand), cols = rows.count * w
                        im2col(gp + s * cout * geo.planeSize, geo, rows: rows, into: buffer)
                        if let gx {
                            BLAS.sgemm(m: cin, n: cols, k: m, a: wp, lda: m, b: buffer, ldb: cols,
                                       c: gx.pointer + s * cin * hw + r0 * w, ldc: hw)
                        }
                        if let gw {
                            BLAS.sgemm(transB: true, m: cin, n: m, k: cols, a: xp + s * cin * hw + r0 * w, lda: hw,
                                       b: buffer, ldb: cols, beta: 1, c: gw.pointer, ldc: m)
                        }
                    }
                }
            }
            var grads: [Tensor?] = [gx, gw]
            if let bias {
                grads.append(bias.requiresGrad ? channelSums(g, batch: n, channels: cout, planeSize: geo.planeSize) : nil)
            }
            return grads
        }
    }
}
