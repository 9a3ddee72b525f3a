import Foundation
import SKDImage
import SKDTensor
import XCTest

final class CodecTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws { folder = try makeScratchFolder("codec") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    // MARK: Round trips

    func testPNGRoundTripIsExact() throws {
        for (channels, w, h) in [(3, 37, 23), (1, 16, 9), (3, 1, 1)] {
            let image = noiseImage(width: w, height: h, channels: channels, seed: UInt64(w))
            let url = folder.appendingPathComponent("rt\(channels).png")
            try image.write(to: url)
            let back = try Image(contentsOf: url)
            XCTAssertEqual(back, image, "PNG \(w)x\(h)x\(channels)")
        }
        // Float images are quantised on the way out.
        let floats = Image(width: 2, height: 1, channels: 1, floats: [0.5, 1.7])
        let url = folder.appendingPathComponent("float.png")
        try floats.write(to: url)
        XCTAssertEqual(try Image(contentsOf: url).bytes, [128, 255])
    }

    func testPNG16BitRoundTrip() throws {
        var rng = SKDRandom(seed: 3)
        let values = (0..<(11 * 7 * 3)).map { _ in Float(rng.int(below: 65536)) / 65535 }
        let image = Image(width: 11, height: 7, channels: 3, floats: values)
        let url = folder.appendingPathComponent("deep.png")
        try image.write(to: url, as: .png(bitDepth: 16))
        let back = try Image(contentsOf: url)
        XCTAssertFalse(back.isUInt8)
        for (a, b) in zip(back.floats, values) { XCTAssertEqual(a, b, accuracy: 1e-7) }
    }

    func testJPEGRoundTripWithinTolerance() throws {
        let image = gradientImage(width: 64, height: 48)
        for (encoding, maxError, meanError) in [
            (ImageEncoding.jpeg(quality: 95, fullChroma: true), 8, 1.0),
            (ImageEncoding.jpeg(quality: 90), 16, 2.5),
        ] {
            let url = folder.appendingPathComponent("rt.jpg")
            try image.write(to: url, as: encoding)
            let back = try Image(contentsOf: url)
            XCTAssertEqual([back.width, back.height, back.channels], [64, 48, 3])
            let errors = zip(back.bytes, image.bytes).map { abs(Int($0) - Int($1)) }
            XCTAssertLessThanOrEqual(errors.max()!, maxError, "\(encoding)")
            XCTAssertLessThanOrEqual(Double(errors.reduce(0, +)) / Double(errors.count), meanError, "\(encoding)")
        }
    }

    func testProgressiveJPEGDecodesLikeBaseline() throws {
        // The same quality gives the same quantised coefficients; only their order in the file differs.
        let image = gradientImage(width: 53, height: 41, seed: 7)
        let baseline = try image.encoded(as: .jpeg(quality: 80))
        let progressive = try image.encoded(as: .jpeg(quality: 80, progressive: true))
        XCTAssertTrue(containsMarker(progressive, 0xC2), "progressive stream has an SOF2 marker")
        XCTAssertFalse(containsMarker(baseline, 0xC2))
        XCTAssertTrue(containsMarker(baseline, 0xC0), "baseline stream has an SOF0 marker")
        let source = folder.appendingPathComponent("mem")
        XCTAssertEqual(try Image(decoding: progressive, source: source), try Image(decoding: baseline, source: source))
    }

    func testGrayJPEGAndExpansion() throws {
        let gray = gradientImage(width: 30, height: 20, channels: 1)
        let url = folder.appendingPathComponent("gray.jpeg")
        try gray.write(to: url, as: .jpeg(quality: 100))
        let native = try Image(contentsOf: url)
        XCTAssertEqual(native.channels, 1)
        XCTAssertLessThanOrEqual(zip(native.bytes, gray.bytes).map { abs(Int($0) - Int($1)) }.max()!, 2)
        let rgb = try Image(contentsOf: url, channels: .rgb)
        XCTAssertEqual(rgb.channels, 3)
        for i in 0..<native.sampleCount {
            XCTAssertEqual(rgb.bytes[3 * i], native.bytes[i])
            XCTAssertEqual(rgb.bytes[3 * i + 2], native.bytes[i])
        }
    }

    func testFormatComesFromContentNotExtension() throws {
        let image = noiseImage(width: 5, height: 4, seed: 9)
        let url = folder.appendingPathComponent("actually-png.jpg")
        try writeBytes(try image.encoded(as: .png()), to: url)
        XCTAssertEqual(try Image(contentsOf: url), image)
    }

    // MARK: Every PNG colour type

    func testEveryPNGColourTypeAndDepth() throws {
        let w = 13, h = 11
        func value(_ x: Int, _ y: Int, _ c: Int, _ depth: Int) -> Int { (x * 7 + y * 13 + c * 29 + x * y) % (1 << depth) }
        for interlaced in [false, true] {
            // Gray 1, 2, 4, 8 bits: low depths scale to 8 bits by bit replication (v · 255 / (2^d − 1)).
            for depth in [1, 2, 4, 8] {
                let png = RawPNG.make(width: w, height: h, colorType: 0, bitDepth: depth, interlaced: interlaced) { value($0, $1, $2, depth) }
                let image = try decode(png, "gray\(depth)")
                XCTAssertEqual([image.width, image.height, image.channels], [w, h, 1])
                let scale = 255 / ((1 << depth) - 1)
                XCTAssertEqual(image.bytes, pixels(w, h, 1) { UInt8(value($0, $1, $2, depth) * scale) }, "gray \(depth)-bit interlaced \(interlaced)")
                let rgb = try Image(decoding: png, source: folder, channels: .rgb)
                XCTAssertEqual(rgb.bytes, pixels(w, h, 3) { x, y, _ in UInt8(value(x, y, 0, depth) * scale) })
            }
            // 8-bit colour types: RGB, gray+alpha, RGBA; alpha dropped.
            for (type, spp, out) in [(UInt8(2), 3, 3), (UInt8(4), 2, 1), (UInt8(6), 4, 3)] {
                let png = RawPNG.make(width: w, height: h, colorType: type, bitDepth: 8, interlaced: interlaced) { value($0, $1, $2, 8) }
                let image = try decode(png, "type\(type)")
                XCTAssertEqual(image.channels, out, "colour type \(type) has \(spp) samples, \(out) kept")
                XCTAssertEqual(image.bytes, pixels(w, h, out) { UInt8(value($0, $1, $2, 8)) }, "colour type \(type) interlaced \(interlaced)")
            }
            // 16-bit: gray, gray+alpha, RGB, RGBA give float samples v / 65535.
            for (type, out) in [(UInt8(0), 1), (UInt8(4), 1), (UInt8(2), 3), (UInt8(6), 3)] {
                let v16 = { (x: Int, y: Int, c: Int) in (x * 4099 + y * 257 + c * 12345 + x * y * 31) % 65536 }
                let png = RawPNG.make(width: w, height: h, colorType: type, bitDepth: 16, interlaced: interlaced, sample: v16)
                let image = try decode(png, "deep\(type)")
                XCTAssertFalse(image.isUInt8)
                XCTAssertEqual(image.channels, out)
                let expected = pixels(w, h, out) { x, y, c in Float(v16(x, y, c)) / 65535 }
                for (a, b) in zip(image.floats, expected) { XCTAssertEqual(a, b, accuracy: 1e-7) }
            }
            // Palette 1, 2, 4, 8 bits, with a tRNS chunk that must be ignored.
            for depth in [1, 2, 4, 8] {
                let entries = 1 << depth
                var palette = [UInt8]()
                for i in 0..<entries {
                    let r = (i * 37) % 256, g = (i * 91 + 5) % 256, b = (255 - i * 11) & 0xFF
                    palette += [UInt8(r), UInt8(g), UInt8(b)]
                }
                let png = RawPNG.make(width: w, height: h, colorType: 3, bitDepth: depth, interlaced: interlaced,
                                      palette: palette, transparency: [0, 128]) { x, y, _ in value(x, y, 0, depth) }
                let image = try decode(png, "palette\(depth)")
                XCTAssertEqual(image.channels, 3)
                XCTAssertEqual(image.bytes, pixels(w, h, 3) { x, y, c in palette[value(x, y, 0, depth) * 3 + c] }, "palette \(depth)-bit interlaced \(interlaced)")
            }
        }
        // An RGB image with tRNS (a transparent colour key) keeps its colours.
        let keyed = RawPNG.make(width: 4, height: 3, colorType: 2, bitDepth: 8, transparency: [0, 1, 0, 2, 0, 3]) { x, y, c in x + y + c }
        XCTAssertEqual(try decode(keyed, "keyed").bytes, pixels(4, 3, 3) { UInt8($0 + $1 + $2) })
        let grayKeyed = RawPNG.make(width: 4, height: 3, colorType: 0, bitDepth: 8, transparency: [0, 2]) { x, y, _ in x * y }
        XCTAssertEqual(try decode(grayKeyed, "gray-keyed").bytes, pixels(4, 3, 1) { x, y, _ in UInt8(x * y) })
        let lowKeyed = RawPNG.make(width: 5, height: 3, colorType: 0, bitDepth: 2, transparency: [0, 1]) { x, _, _ in x % 4 }
        XCTAssertEqual(try decode(lowKeyed, "gray2-keyed").bytes, pixels(5, 3, 1) { x, _, _ in UInt8((x % 4) * 85) })
    }

    // MARK: Tensors

    func testTensorRoundTripBothRanges() throws {
        let image = noiseImage(width: 9, height: 5, seed: 11)
        for range in [PixelRange.zeroToOne, .minusOneToOne] {
            let t = image.tensor(range: range)
            XCTAssertEqual(t.shape, [1, 3, 5, 9])
            // NCHW: sample (y = 2, x = 7, c = 1) sits at [0, 1, 2, 7].
            let v = Float(image.bytes[(2 * 9 + 7) * 3 + 1]) / 255
            XCTAssertEqual(t.pointer[1 * 45 + 2 * 9 + 7], range == .zeroToOne ? v : 2 * v - 1, accuracy: 1e-6)
            XCTAssertEqual(Image(tensor: t, range: range), image)
        }
        let batch = Image.tensor(batch: [image, noiseImage(width: 9, height: 5, seed: 12)], range: .minusOneToOne)
        XCTAssertEqual(batch.shape, [2, 3, 5, 9])
        XCTAssertEqual(Image.images(from: batch, range: .minusOneToOne)[0], image)
        XCTAssertEqual(batch.values.min()!, -1, accuracy: 0.01)
    }

    func testTensorToImageRoundsAndClamps() {
        let t = Tensor(shape: [1, 1, 1, 6], values: [-0.3, 1.4, 0.2 / 255, 0.7 / 255, 254.6 / 255, .nan])
        XCTAssertEqual(Image(tensor: t).bytes, [0, 255, 0, 1, 255, 0])
        let m = Tensor(shape: [1, 1, 1, 3], values: [-1.5, 0, 1])
        XCTAssertEqual(Image(tensor: m, range: .minusOneToOne).bytes, [0, 128, 255])
        let f = Image(floatTensor: m, range: .minusOneToOne)
        XCTAssertEqual(f.floats, [-0.25, 0.5, 1])
    }

    // MARK: Writing

    func testWritesAreAtomicAndLeaveNoTemporaryFiles() throws {
        let url = folder.appendingPathComponent("out.png")
        try noiseImage(width: 8, height: 8, seed: 1).write(to: url)
        let second = noiseImage(width: 6, height: 3, seed: 2)
        try second.write(to: url)  // replaces the first
        XCTAssertEqual(try Image(contentsOf: url), second)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["out.png"])

        let missingFolder = folder.appendingPathComponent("nope/out.png")
        XCTAssertThrowsError(try second.write(to: missingFolder)) { error in
            guard case ImageError.writeFailed(let u, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(u, missingFolder)
        }
        let unknown = folder.appendingPathComponent("out.bmp")
        XCTAssertThrowsError(try second.write(to: unknown)) { XCTAssertTrue("\($0)".contains("out.bmp")) }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["out.png"])
    }

    // MARK: Helpers

    private func decode(_ bytes: [UInt8], _ name: String) throws -> Image {
        try Image(decoding: bytes, source: folder.appendingPathComponent(name + ".png"))
    }

    private func pixels<T>(_ w: Int, _ h: Int, _ c: Int, _ f: (Int, Int, Int) -> T) -> [T] {
        var out = [T]()
        for y in 0..<h { for x in 0..<w { for ch in 0..<c { out.append(f(x, y, ch)) } } }
        return out
    }

    private func containsMarker(_ bytes: [UInt8], _ marker: UInt8) -> Bool {
        zip(bytes, bytes.dropFirst()).contains { $0 == 0xFF && $1 == marker }
    }
}
