// Image ↔ tensor: interleaved HWC samples to the NCHW float32 layout of the networks, and back with the
// rounding and clamping of the official test scripts.

import SKDTensor

/// The value range that pixel intensities 0...1 are mapped to in tensors.
public enum PixelRange: String, Equatable, Sendable, Codable {
    /// Intensity `v` is stored as `v` (0 = black, 1 = white).
    case zeroToOne
    /// Intensity `v` is stored as `2v − 1` (−1 = black, 1 = white), the range the paper trains in.
    case minusOneToOne

    /// The tensor value of intensity `v`.
    @inlinable public func encode(_ v: Float) -> Float { self == .zeroToOne ? v : 2 * v - 1 }
    /// The intensity of tensor value `t`.
    @inlinable public func decode(_ t: Float) -> Float { self == .zeroToOne ? t : (t + 1) * 0.5 }

    /// The tensor values of the 256 8-bit intensities, for table look-up in conversions.
    var byteTable: [Float] { (0..<256).map { encode(Float($0) / 255) } }
}

extension Image {
    /// Writes the image as item `index` of the NCHW `tensor`, whose shape must be `[N, channels, height, width]`.
    public func store(into tensor: Tensor, at index: Int, range: PixelRange) {
        precondition(tensor.shape.count == 4 && tensor.shape[1] == channels && tensor.shape[2] == height
                        && tensor.shape[3] == width && index >= 0 && index < tensor.shape[0],
                     "Image.store: \(width)x\(height)x\(channels) image does not fit item \(index) of \(tensor.shape)")
        let plane = width * height
        let out = tensor.pointer + index * channels * plane
        let c = channels
        switch pixels {
        case .uint8(let bytes):
            let table = range.byteTable
            bytes.withUnsafeBufferPointer { b in
                table.withUnsafeBufferPointer { t in
                    for ch in 0..<c {
                        let o = out + ch * plane
                        for i in 0..<plane { o[i] = t[Int(b[i * c + ch])] }
                    }
                }
            }
        case .float(let floats):
            floats.withUnsafeBufferPointer { f in
                for ch in 0..<c {
                    let o = out + ch * plane
                    for i in 0..<plane { o[i] = range.encode(f[i * c + ch]) }
                }
            }
        }
    }

    /// The image as a `[1, channels, height, width]` float32 tensor in `range`.
    public func tensor(range: PixelRange = .zeroToOne) -> Tensor {
        let t = Tensor(uninitialized: [1, channels, height, width])
        store(into: t, at: 0, range: range)
        return t
    }

    /// Images of one size stacked into an `[N, channels, height, width]` float32 tensor in `range`.
    public static func tensor(batch images: [Image], range: PixelRange = .zeroToOne) -> Tensor {
        precondition(!images.isEmpty, "Image.tensor(batch:): no images")
        let first = images[0]
        let t = Tensor(uninitialized: [images.count, first.channels, first.height, first.width])
        for (i, image) in images.enumerated() {
            precondition(image.width == first.width && image.height == first.height && image.channels == first.channels,
                         "Image.tensor(batch:): image \(i) is \(image.width)x\(image.height)x\(image.channels), image 0 is \(first.width)x\(first.height)x\(first.channels)")
            image.store(into: t, at: i, range: range)
        }
        return t
    }

    /// Item `index` of an NCHW `tensor` (`[N, C, H, W]` with C = 1 or 3, or `[C, H, W]`) in `range`, as an
    /// 8-bit image: values are mapped to 0...1, scaled by 255, clamped and rounded half to even.
    public init(tensor: Tensor, index: Int = 0, range: PixelRange = .zeroToOne) {
        self = Image.fromTensor(tensor, index: index, range: range, quantize: true)
    }

    /// Item `index` of an NCHW `tensor` (`[N, C, H, W]` or `[C, H, W]`, C = 1 or 3) in `range`, as a float
    /// image on the 0...1 scale without rounding or clamping.
    public init(floatTensor tensor: Tensor, index: Int = 0, range: PixelRange = .zeroToOne) {
        self = Image.fromTensor(tensor, index: index, range: range, quantize: false)
    }

    /// Every item of an `[N, C, H, W]` tensor as 8-bit images (see `init(tensor:index:range:)`).
    public static func images(from tensor: Tensor, range: PixelRange = .zeroToOne) -> [Image] {
        precondition(tensor.rank == 4, "Image.images(from:): expected [N, C, H, W], got \(tensor.shape)")
        return (0..<tensor.shape[0]).map { Image(tensor: tensor, index: $0, range: range) }
    }

    private static func fromTensor(_ tensor: Tensor, index: Int, range: PixelRange, quantize: Bool) -> Image {
        let shape = tensor.rank == 3 ? [1] + tensor.shape : tensor.shape
        precondition(shape.count == 4 && (shape[1] == 1 || shape[1] == 3) && index >= 0 && index < shape[0],
                     "Image(tensor:): expected [N, 1 or 3, H, W] with item \(index), got \(tensor.shape)")
        let c = shape[1], h = shape[2], w = shape[3], plane = h * w
        let source = tensor.pointer + index * c * plane
        if quantize {
            let bytes = [UInt8](unsafeUninitializedCapacity: c * plane) { buffer, initialized in
                for ch in 0..<c {
                    let s = source + ch * plane
                    for i in 0..<plane { buffer[i * c + ch] = Image.quantize(range.decode(s[i])) }
                }
                initialized = c * plane
            }
            return Image(width: w, height: h, channels: c, bytes: bytes)
        }
        let floats = [Float](unsafeUninitializedCapacity: c * plane) { buffer, initialized in
            for ch in 0..<c {
                let s = source + ch * plane
                for i in 0..<plane { buffer[i * c + ch] = range.decode(s[i]) }
            }
            initialized = c * plane
        }
        return Image(width: w, height: h, channels: c, floats: floats)
    }
}
