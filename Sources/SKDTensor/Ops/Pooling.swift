// Average, max and global-average pooling over NCHW planes (PyTorch's `avg_pool2d`, `max_pool2d`,
// `adaptive_avg_pool2d(·, 1)`, with `ceil_mode = False`). Planes are independent and run in parallel; every
// backward writes only into its own plane, so it parallelises the same way.

import Foundation

extension Tensor {
    /// Checks a pooling geometry and returns `(N·C planes, H, W, Ho, Wo)`.
    private func poolGeometry(_ op: String, kernel: Int, stride: Int, padding: Int) -> (Int, Int, Int, Int, Int) {
        precondition(rank == 4, "\(op): input must be [N, C, H, W], got \(shape)")
        precondition(kernel >= 1 && stride >= 1, "\(op): kernel \(kernel) and stride \(stride) must be ≥ 1")
        precondition(padding >= 0 && padding <= kernel / 2,
                     "\(op): padding \(padding) must be between 0 and half the kernel (\(kernel / 2))")
        let h = shape[2], w = shape[3]
        let ho = (h + 2 * padding - kernel) / stride + 1, wo = (w + 2 * padding - kernel) / stride + 1
        precondition(h + 2 * padding >= kernel && w + 2 * padding >= kernel,
                     "\(op): input \(shape) with padding \(padding) is smaller than the kernel \(kernel)")
        return (shape[0] * shape[1], h, w, ho, wo)
    }

    /// Average pooling with a square window.
    ///
    /// - Parameters:
    ///   - kernel: the window side, ≥ 1.
    ///   - stride: the window step, ≥ 1.
    ///   - padding: implicit zeros on every side, at most `kernel / 2`.
    ///   - countIncludePad: divide by the full window size (padding included) instead of the number of
    ///     input elements under the window (PyTorch's `count_include_pad`; the default here is `false`).
    /// - Returns: `[N, C, Ho, Wo]` for an input `[N, C, H, W]`, `Ho = (H + 2·padding − kernel) / stride + 1`.
    public func avgPool2d(kernel: Int, stride: Int, padding: Int = 0, countIncludePad: Bool = false) -> Tensor {
        let (planes, h, w, ho, wo) = poolGeometry("avgPool2d", kernel: kernel, stride: stride, padding: padding)
        let out = Tensor(uninitialized: [shape[0], shape[1], ho, wo])
        // The divisor of each output position is the same for every plane; compute the table once.
        var divisors = [Float](repeating: 0, count: ho * wo)
        for oh in 0..<ho {
            let hs = oh * stride - padding, he = Swift.min(hs + kernel, h + padding)
            for ow in 0..<wo {
                let ws = ow * stride - padding, we = Swift.min(ws + kernel, w + padding)
                let area = countIncludePad
                    ? (he - hs) * (we - ws)
                    : (Swift.min(he, h) - Swift.max(hs, 0)) * (Swift.min(we, w) - Swift.max(ws, 0))
                divisors[oh * wo + ow] = 1 / Float(area)
            }
        }
        let src = pointer, dst = out.pointer
        divisors.withUnsafeBufferPointer { inv in
            Parallel.forEach(planes, cost: ho * wo * kernel * kernel) { r in
                for plane in r {
                    let xs = src + plane * h * w, os = dst + plane * ho * wo
                    for oh in 0..<ho {
                        let hs = Swift.max(oh * stride - padding, 0), he = Swift.min(oh * stride - padding + kernel, h)
                        for ow in 0..<wo {
                            let ws = Swift.max(ow * stride - padding, 0), we = Swift.min(ow * stride - padding + kernel, w)
                            var acc: Float = 0
                            for ih in hs..<he { let row = xs + ih * w; for iw in ws..<we { acc += row[iw] } }
                            os[oh * wo + ow] = acc * inv[oh * wo + ow]
                        }
                    }
                }
            }
        }
        let inputShape = shape
        return out.recorded("avgPool2d", [self]) { g in
            let gx = Tensor(zeros: inputShape)
            let gs = g.pointer, gd = gx.pointer
            divisors.withUnsafeBufferPointer { inv in
                Parallel.forEach(planes, cost: ho * wo * kernel * kernel) { r in
                    for plane in r {
                        let dx = gd + plane * h * w, go = gs + plane * ho * wo
                        for oh in 0..<ho {
                            let hs = Swift.max(oh * stride - padding, 0), he = Swift.min(oh * stride - padding + kernel, h)
                            for ow in 0..<wo {
                                let ws = Swift.max(ow * stride - padding, 0), we = Swift.min(ow * stride - padding + kernel, w)
                                let v = go[oh * wo + ow] * inv[oh * wo + ow]
                                for ih in hs..<he { let row = dx + ih * w; for iw in ws..<we { row[iw] += v } }
                            }
                        }
                    }
                }
            }
            return [gx]
        }
    }

    /// Max pooling with a square window; padding counts as −∞.
    ///
    /// The gradient goes to the arg-max of each window; on ties the first maximum in row-major window order
    /// wins (as PyTorch's CPU kernel).
    ///
    /// - Parameters:
    ///   - kernel: the window side, ≥ 1.
    ///   - stride: the window step, ≥ 1.
    ///   - padding: implicit −∞ on every side, at most `kernel / 2`.
    /// - Returns: `[N, C, Ho, Wo]` for an input `[N, C, H, W]`, `Ho = (H + 2·padding − kernel) / stride + 1`.
    public func maxPool2d(kernel: Int, stride: Int, padding: Int = 0) -> Tensor {
        let (planes, h, w, ho, wo) = poolGeometry("maxPool2d", kernel: kernel, stride: stride, padding: padding)
        let out = Tensor(uninitialized: [shape[0], shape[1], ho, wo])
        // The arg-max offsets within each plane: all the backward needs (it does not keep the input alive).
        let argmax = UnsafeMutablePointer<Int32>.allocate(capacity: Swift.max(out.count, 1))
        let src = pointer, dst = out.pointer
        Parallel.forEach(planes, cost: ho * wo * kernel * kernel) { r in
            for plane in r {
                let xs = src + plane * h * w, os = dst + plane * ho * wo, am = argmax + plane * ho * wo
                for oh in 0..<ho {
                    let hs = Swift.max(oh * stride - padding, 0), he = Swift.min(oh * stride - padding + kernel, h)
                    for ow in 0..<wo {
                        let ws = Swift.max(ow * stride - padding, 0), we = Swift.min(ow * stride - padding + kernel, w)
                        var best = -Float.infinity, index = hs * w + ws
                        for ih in hs..<he {
                            for iw in ws..<we {
                                let v = xs[ih * w + iw]
                                if v > best || v.isNaN { best = v; index = ih * w + iw }
                            }
                        }
                        os[oh * wo + ow] = best
                        am[oh * wo + ow] = Int32(index)
                    }
                }
            }
        }
        let indices = ArgmaxBuffer(argmax)
        let inputShape = shape
        return out.recorded("maxPool2d", [self]) { g in
            let gx = Tensor(zeros: inputShape)
            let gs = g.pointer, gd = gx.pointer, am = indices.pointer
            Parallel.forEach(planes, cost: ho * wo) { r in
                for plane in r {
                    let dx = gd + plane * h * w, go = gs + plane * ho * wo, idx = am + plane * ho * wo
                    for i in 0..<(ho * wo) { dx[Int(idx[i])] += go[i] }
                }
            }
            return [gx]
        }
    }

    /// Global average pooling (PyTorch's `adaptive_avg_pool2d(x, 1)`).
    ///
    /// - Returns: `[N, C, 1, 1]` for an input `[N, C, H, W]`: the mean of every plane.
    public func adaptiveAvgPool1x1() -> Tensor {
        precondition(rank == 4, "adaptiveAvgPool1x1: input must be [N, C, H, W], got \(shape)")
        let planes = shape[0] * shape[1], hw = shape[2] * shape[3]
        precondition(hw > 0, "adaptiveAvgPool1x1: empty planes in \(shape)")
        let out = Tensor(uninitialized: [shape[0], shape[1], 1, 1])
        let src = pointer, dst = out.pointer
        let scale = 1 / Double(hw)
        Parallel.forEach(planes, cost: hw) { r in
            for plane in r {
                let xs = src + plane * hw
                var acc: Double = 0
                // Float partials over short runs vectorise; Double across runs keeps large planes accurate.
                var i = 0
                while i < hw {
                    let end = Swift.min(hw, i + 1024)
                    var part: Float = 0
                    for j in i..<end { part += xs[j] }
                    acc += Double(part)
                    i = end
                }
                dst[plane] = Float(acc * scale)
            }
        }
        let inputShape = shape
        return out.recorded("adaptiveAvgPool1x1", [self]) { g in
            let gx = Tensor(uninitialized: inputShape)
            let gs = g.pointer, gd = gx.pointer, inv = Float(scale)
            Parallel.forEach(planes, cost: hw) { r in
                for plane in r { (gd + plane * hw).update(repeating: gs[plane] * inv, count: hw) }
            }
            return [gx]
        }
    }
}

/// Owns the arg-max indices of one max-pooling call; freed with the backward closure that captures it.
private final class ArgmaxBuffer {
    let pointer: UnsafeMutablePointer<Int32>
    init(_ pointer: UnsafeMutablePointer<Int32>) { self.pointer = pointer }
    deinit { pointer.deallocate() }
}
