// Spatial padding and cropping of the last two axes (PyTorch's `F.pad(x, (left, right, top, bottom), mode)`
// and slicing `x[..., top:top+h, left:left+w]`). Zero padding and cropping are each other's adjoints; the
// adjoint of reflect padding folds the mirrored border back onto the rows and columns it was copied from.

import Foundation

/// How `padded2d` fills the border.
public enum PaddingMode {
    /// Zeros.
    case zeros
    /// The mirror image of the input without repeating the edge (PyTorch's `mode='reflect'`):
    /// `[a b c d]` padded by 2 on the left is `[c b a b c d]`.
    case reflect
}

extension Tensor {
    /// Mirrors an out-of-range index into `0..<extent` without repeating the edge (requires |overshoot| < extent).
    @inline(__always)
    private static func reflectIndex(_ i: Int, _ extent: Int) -> Int {
        i < 0 ? -i : (i >= extent ? 2 * (extent - 1) - i : i)
    }

    /// Pads every `[h, w]` plane of `src` (`[planes, h, w]`) into `dst` (`[planes, h+top+bottom, w+left+right]`).
    private static func padKernel(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, planes: Int, h: Int, w: Int,
        left: Int, right: Int, top: Int, bottom: Int, mode: PaddingMode
    ) {
        let ph = h + top + bottom, pw = w + left + right
        Parallel.forEach(planes * ph, cost: pw) { r in
            for row in r {
                let plane = row / ph, ih = row % ph - top
                let d = dst + row * pw
                let srow: UnsafePointer<Float>
                switch mode {
                case .zeros:
                    if ih < 0 || ih >= h { d.update(repeating: 0, count: pw); continue }
                    srow = src + plane * h * w + ih * w
                    d.update(repeating: 0, count: left)
                    (d + left + w).update(repeating: 0, count: right)
                case .reflect:
                    srow = src + plane * h * w + reflectIndex(ih, h) * w
                    for j in 0..<left { d[j] = srow[left - j] }
                    for j in 0..<right { d[left + w + j] = srow[w - 2 - j] }
                }
                (d + left).update(from: srow, count: w)
            }
        }
    }

    /// The adjoint of reflect padding: adds every element of `g` (`[planes, h+top+bottom, w+left+right]`) into
    /// the element of `gx` (`[planes, h, w]`, zeroed by the caller) it was copied from. Parallel over planes,
    /// since mirrored rows of one plane land on the same input rows.
    private static func reflectFold(
        _ g: UnsafePointer<Float>, _ gx: UnsafeMutablePointer<Float>, planes: Int, h: Int, w: Int,
        left: Int, right: Int, top: Int, bottom: Int
    ) {
        let ph = h + top + bottom, pw = w + left + right
        Parallel.forEach(planes, cost: ph * pw) { r in
            for plane in r {
                for oh in 0..<ph {
                    let grow = g + (plane * ph + oh) * pw
                    let d = gx + plane * h * w + reflectIndex(oh - top, h) * w
                    for j in 0..<w { d[j] += grow[left + j] }
                    for j in 0..<left { d[left - j] += grow[j] }
                    for j in 0..<right { d[w - 2 - j] += grow[left + w + j] }
                }
            }
        }
    }

    /// Copies the window `[top..<top+height, left..<left+width]` of every `[h, w]` plane of `src` into `dst`.
    private static func cropKernel(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, planes: Int, h: Int, w: Int,
        top: Int, left: Int, height: Int, width: Int
    ) {
        Parallel.forEach(planes * height, cost: width) { r in
            for row in r {
                let plane = row / height, i = row % height
                (dst + row * width).update(from: src + plane * h * w + (top + i) * w + left, count: width)
            }
        }
    }

    /// Pads the last two axes.
    ///
    /// - Parameters:
    ///   - left, right: columns added before and after the width axis, ≥ 0.
    ///   - top, bottom: rows added before and after the height axis, ≥ 0.
    ///   - mode: zeros, or reflection (then every pad must be smaller than the extent it mirrors).
    /// - Returns: `[..., H + top + bottom, W + left + right]` for an input `[..., H, W]` (rank ≥ 2).
    public func padded2d(left: Int, right: Int, top: Int, bottom: Int, mode: PaddingMode = .zeros) -> Tensor {
        precondition(rank >= 2, "padded2d: input needs rank ≥ 2 ([..., H, W]), got \(shape)")
        precondition(left >= 0 && right >= 0 && top >= 0 && bottom >= 0,
                     "padded2d: pads (left \(left), right \(right), top \(top), bottom \(bottom)) must be ≥ 0")
        let h = shape[rank - 2], w = shape[rank - 1]
        if mode == .reflect {
            precondition(left < w && right < w && top < h && bottom < h,
                         "padded2d: reflect pads (left \(left), right \(right), top \(top), bottom \(bottom)) must be smaller than the plane \(h)×\(w)")
        }
        if left == 0 && right == 0 && top == 0 && bottom == 0 { return self }
        let planes = count / Swift.max(h * w, 1)
        let outShape = Array(shape.dropLast(2)) + [h + top + bottom, w + left + right]
        let out = Tensor(uninitialized: outShape)
        Tensor.padKernel(pointer, out.pointer, planes: planes, h: h, w: w,
                         left: left, right: right, top: top, bottom: bottom, mode: mode)
        let inputShape = shape
        return out.recorded("padded2d", [self]) { g in
            let gx = Tensor(uninitialized: inputShape)
            switch mode {
            case .zeros:
                Tensor.cropKernel(g.pointer, gx.pointer, planes: planes, h: h + top + bottom, w: w + left + right,
                                  top: top, left: left, height: h, width: w)
            case .reflect:
                gx.pointer.update(repeating: 0, count: gx.count)
                Tensor.reflectFold(g.pointer, gx.pointer, planes: planes, h: h, w: w,
                                   left: left, right: right, top: top, bottom: bottom)
            }
            return [gx]
        }
    }

    /// The window `[top..<top+height, left..<left+width]` of the last two axes.
    ///
    /// - Returns: `[..., height, width]` for an input `[..., H, W]` (rank ≥ 2); the window must lie inside the plane.
    public func cropped2d(top: Int, left: Int, height: Int, width: Int) -> Tensor {
        precondition(rank >= 2, "cropped2d: input needs rank ≥ 2 ([..., H, W]), got \(shape)")
        let h = shape[rank - 2], w = shape[rank - 1]
        precondition(top >= 0 && left >= 0 && height >= 0 && width >= 0 && top + height <= h && left + width <= w,
                     "cropped2d: window (top \(top), left \(left), \(height)×\(width)) is not inside the \(h)×\(w) plane of \(shape)")
        if top == 0 && left == 0 && height == h && width == w { return self }
        let planes = count / Swift.max(h * w, 1)
        let out = Tensor(uninitialized: Array(shape.dropLast(2)) + [height, width])
        Tensor.cropKernel(pointer, out.pointer, planes: planes, h: h, w: w, top: top, left: left, height: height, width: width)
        let inputShape = shape
        return out.recorded("cropped2d", [self]) { g in
            let gx = Tensor(uninitialized: inputShape)
            Tensor.padKernel(g.pointer, gx.pointer, planes: planes, h: height, w: width,
                             left: left, right: w - left - width, top: top, bottom: h - top - height,
                             mode: .zeros)
            return [gx]
        }
    }
}
