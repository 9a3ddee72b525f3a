// Helpers of the SKDImage tests: the reference-data folder, scratch folders, and an independent PNG writer
// (stored deflate blocks, hand-computed CRCs) that produces every PNG colour type and bit depth, so the decoder
// is checked against files our own encoder cannot make.

import Foundation
import SKDImage
import SKDTensor
import XCTest

/// The shared reference folder: `$SKD_REFERENCE_DIR`, or `../shared` beside the package root. Skips the test when
/// it is missing, except under `CI=true`, where that is a failure.
func referenceFile(_ relative: String) throws -> URL {
    let environment = ProcessInfo.processInfo.environment
    let base: URL
    if let override = environment["SKD_REFERENCE_DIR"], !override.isEmpty {
        base = URL(fileURLWithPath: override)
    } else {
        // Tests/SKDImageTests/TestFixtures.swift → the package root → ../shared
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        base = packageRoot.deletingLastPathComponent().appendingPathComponent("shared")
    }
    let url = base.appendingPathComponent(relative)
    guard FileManager.default.fileExists(atPath: url.path) else {
        let reason = "reference data \(url.path) not found (set SKD_REFERENCE_DIR or provide ../shared)"
        if environment["CI"] == "true" {
            XCTFail(reason)
            throw NSError(domain: "SKDImageTests", code: 1, userInfo: [NSLocalizedDescriptionKey: reason])
        }
        print("skipping: \(reason)")
        throw XCTSkip(reason)
    }
    return url
}

/// A fresh empty folder under the system temporary folder, removed by the returned cleanup closure.
func makeScratchFolder(_ name: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("skdimage-tests-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Writes raw bytes (no atomicity needed for fixtures).
func writeBytes(_ bytes: [UInt8], to url: URL) throws {
    try Data(bytes).write(to: url)
}

/// A deterministic 8-bit RGB test image: smooth gradients plus a few edges, so JPEG errors stay small.
func gradientImage(width: Int, height: Int, channels: Int = 3, seed: UInt64 = 1) -> Image {
    var rng = SKDRandom(seed: seed)
    let phase = rng.uniform() * 6
    var bytes = [UInt8](repeating: 0, count: width * height * channels)
    for y in 0..<height {
        for x in 0..<width {
            for c in 0..<channels {
                let fx = Float(x) / Float(max(width - 1, 1)), fy = Float(y) / Float(max(height - 1, 1))
                var v = 0.5 + 0.35 * sin(phase + 3 * fx + 2 * fy + Float(c)) + 0.1 * (fx - fy)
                if x > width / 2 && y > height / 3 { v -= 0.1 }
                bytes[(y * width + x) * channels + c] = UInt8(max(0, min(255, (v * 255).rounded())))
            }
        }
    }
    return Image(width: width, height: height, channels: channels, bytes: bytes)
}

/// Random 8-bit samples.
func noiseImage(width: Int, height: Int, channels: Int = 3, seed: UInt64) -> Image {
    var rng = SKDRandom(seed: seed)
    let bytes = (0..<(width * height * channels)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    return Image(width: width, height: height, channels: channels, bytes: bytes)
}

// MARK: - An independent PNG writer

enum RawPNG {
    static let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    static func bigEndian(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return bigEndian(UInt32(data.count)) + body + bigEndian(crc(body))
    }

    /// zlib stream of stored (uncompressed) deflate blocks.
    static func zlibStored(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let n = min(65535, data.count - offset)
            let final: UInt8 = offset + n == data.count ? 1 : 0
            out.append(final)
            out += [UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            out += data[offset..<(offset + n)]
            offset += n
        } while offset < data.count
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in data { a = (a + UInt32(byte)) % 65521; b = (b + a) % 65521 }
        return out + bigEndian(b << 16 | a)
    }

    /// Samples per pixel of a PNG colour type.
    static func channels(_ colorType: UInt8) -> Int {
        switch colorType { case 0: return 1; case 2: return 3; case 3: return 1; case 4: return 2; default: return 4 }
    }

    /// A PNG whose sample `c` of pixel (x, y) is `sample(x, y, c)` (already in 0..<2^bitDepth; palette index for
    /// colour type 3). Rows use filter type 0, or Sub (1) on odd rows to exercise unfiltering; Adam7 when `interlaced`.
    static func make(width: Int, height: Int, colorType: UInt8, bitDepth: Int, interlaced: Bool = false,
                     palette: [UInt8]? = nil, transparency: [UInt8]? = nil,
                     sample: (Int, Int, Int) -> Int) -> [UInt8] {
        let spp = channels(colorType)
        var ihdr = bigEndian(UInt32(width)) + bigEndian(UInt32(height))
        ihdr += [UInt8(bitDepth), colorType, 0, 0, interlaced ? 1 : 0]
        let passes: [(x0: Int, y0: Int, dx: Int, dy: Int)] = interlaced
            ? [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
            : [(0, 0, 1, 1)]
        let bytesPerPixel = max(1, spp * bitDepth / 8)
        var raw = [UInt8]()
        for pass in passes {
            let xs = Array(stride(from: pass.x0, to: width, by: pass.dx))
            let ys = Array(stride(from: pass.y0, to: height, by: pass.dy))
            if xs.isEmpty || ys.isEmpty { continue }
            for (rowIndex, y) in ys.enumerated() {
                var row = [UInt8]()
                var accumulator = 0, filled = 0
                for x in xs {
                    for c in 0..<spp {
                        let v = sample(x, y, c)
                        if bitDepth == 16 {
                            row += [UInt8(v >> 8), UInt8(v & 0xFF)]
                        } else if bitDepth == 8 {
                            row.append(UInt8(v))
                        } else {
                            accumulator = accumulator << bitDepth | v
                            filled += bitDepth
                            if filled == 8 { row.append(UInt8(accumulator)); accumulator = 0; filled = 0 }
                        }
                    }
                }
                if filled > 0 { row.append(UInt8(accumulator << (8 - filled))) }
                if rowIndex % 2 == 1 {
                    // Sub filter: each byte minus the byte one pixel to the left.
                    var filtered = row
                    for i in stride(from: row.count - 1, through: bytesPerPixel, by: -1) {
                        filtered[i] = row[i] &- row[i - bytesPerPixel]
                    }
                    raw.append(1)
                    raw += filtered
                } else {
                    raw.append(0)
                    raw += row
                }
            }
        }
        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        png += chunk("IHDR", ihdr)
        if let palette { png += chunk("PLTE", palette) }
        if let transparency { png += chunk("tRNS", transparency) }
        png += chunk("IDAT", zlibStored(raw))
        png += chunk("IEND", [])
        return png
    }
}
