// The one place where the C shim's types appear; everything here is internal.

internal import CImageShim
import Foundation

/// The capacity of the message buffers handed to the shim (libjpeg's own limit is 200 bytes).
private let messageCapacity = 512

/// The result of a decode or encode call into C: pixels or bytes, or the library's message.
enum CodecOutcome<Value> {
    case success(Value)
    case failure(String)
}

enum Codec {
    /// Decodes PNG (`isPNG`) or JPEG data into an `Image` (gray or RGB; 16-bit samples become floats).
    static func decode(_ data: UnsafeRawBufferPointer, isPNG: Bool) -> CodecOutcome<Image> {
        var decoded = skd_decoded_image()
        var message = [CChar](repeating: 0, count: messageCapacity)
        let base = data.baseAddress?.assumingMemoryBound(to: UInt8.self)
        let status = message.withUnsafeMutableBufferPointer { m -> Int32 in
            isPNG ? skd_png_decode(base, data.count, &decoded, m.baseAddress, messageCapacity)
                : skd_jpeg_decode(base, data.count, &decoded, m.baseAddress, messageCapacity)
        }
        guard status == 0, let pixels = decoded.pixels else { return .failure(text(message)) }
        defer { skd_image_free(pixels) }
        let width = Int(decoded.width), height = Int(decoded.height), channels = Int(decoded.channels)
        let count = width * height * channels
        if decoded.bytes_per_sample == 2 {
            let samples = UnsafeRawPointer(pixels).assumingMemoryBound(to: UInt16.self)
            let floats = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                for i in 0..<count { buffer[i] = Float(samples[i]) * (1 / 65535) }
                initialized = count
            }
            return .success(Image(width: width, height: height, channels: channels, floats: floats))
        }
        let bytes = [UInt8](UnsafeBufferPointer(start: pixels, count: count))
        return .success(Image(width: width, height: height, channels: channels, bytes: bytes))
    }

    /// The outcome of reading an image header: the stated size, a need for more of the file, or the library's message.
    enum ProbeOutcome: Equatable {
        case size(width: Int, height: Int)
        case needsMoreData
        case failure(String)
    }

    /// The pixel size the PNG (`isPNG`) or JPEG header at the start of `data` states, read by libpng/libjpeg without
    /// decoding the image.
    static func probe(_ data: UnsafeRawBufferPointer, isPNG: Bool) -> ProbeOutcome {
        var width: Int32 = 0, height: Int32 = 0
        var message = [CChar](repeating: 0, count: messageCapacity)
        let base = data.baseAddress?.assumingMemoryBound(to: UInt8.self)
        let status = message.withUnsafeMutableBufferPointer { m -> Int32 in
            isPNG ? skd_png_probe(base, data.count, &width, &height, m.baseAddress, messageCapacity)
                : skd_jpeg_probe(base, data.count, &width, &height, m.baseAddress, messageCapacity)
        }
        switch status {
        case 0: return .size(width: Int(width), height: Int(height))
        case 2: return .needsMoreData
        default: return .failure(text(message))
        }
    }

    /// Encodes `image` as PNG with `bitDepth` 8 or 16 and zlib level `compression`.
    static func encodePNG(_ image: Image, bitDepth: Int, compression: Int) -> CodecOutcome<[UInt8]> {
        if bitDepth == 16 {
            let samples: [UInt16]
            switch image.pixels {
            case .uint8(let b): samples = b.map { UInt16($0) * 257 }
            case .float(let f):
                samples = f.map { v in
                    let s = v * 65535
                    return !(s > 0) ? 0 : (s >= 65535 ? 65535 : UInt16(s.rounded(.toNearestOrEven)))
                }
            }
            return samples.withUnsafeBytes { raw in
                encode { out, size, message in
                    skd_png_encode(raw.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(image.width),
                                   Int32(image.height), Int32(image.channels), 16, Int32(compression),
                                   out, size, message, messageCapacity)
                }
            }
        }
        return image.bytes.withUnsafeBufferPointer { b in
            encode { out, size, message in
                skd_png_encode(b.baseAddress, Int32(image.width), Int32(image.height), Int32(image.channels), 8,
                               Int32(compression), out, size, message, messageCapacity)
            }
        }
    }

    /// Encodes `image` (quantised to 8 bits) as JPEG.
    static func encodeJPEG(_ image: Image, quality: Int, progressive: Bool, fullChroma: Bool) -> CodecOutcome<[UInt8]> {
        image.bytes.withUnsafeBufferPointer { b in
            encode { out, size, message in
                skd_jpeg_encode(b.baseAddress, Int32(image.width), Int32(image.height), Int32(image.channels),
                                Int32(quality), progressive ? 1 : 0, fullChroma ? 1 : 0, out, size, message,
                                messageCapacity)
            }
        }
    }

    private static func encode(
        _ call: (UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>, UnsafeMutablePointer<Int>,
                 UnsafeMutablePointer<CChar>) -> Int32
    ) -> CodecOutcome<[UInt8]> {
        var output: UnsafeMutablePointer<UInt8>? = nil
        var size = 0
        var message = [CChar](repeating: 0, count: messageCapacity)
        let status = message.withUnsafeMutableBufferPointer { m in call(&output, &size, m.baseAddress!) }
        guard status == 0, let output else { return .failure(text(message)) }
        defer { skd_image_free(output) }
        return .success([UInt8](UnsafeBufferPointer(start: output, count: size)))
    }

    private static func text(_ message: [CChar]) -> String {
        let s = message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return s.isEmpty ? "unknown error" : s
    }
}
