import Foundation
import SKDImage
import XCTest

/// `ImageHeader`: the size a PNG or JPEG states, read through the C shim without decoding, agrees with the decoder;
/// headers far into the file are found; broken headers are errors naming the file.
final class ImageHeaderTests: XCTestCase {
    private func size(_ url: URL) throws -> [Int] { let s = try ImageHeader.size(of: url); return [s.width, s.height] }

    func testHeaderSizesAgreeWithTheDecoder() throws {
        let dir = try makeScratchFolder("header-sizes")
        let cases: [(String, Int, Int, Int, ImageEncoding)] = [
            ("a.png", 33, 17, 3, .png(bitDepth: 8, compression: 6)), ("g16.png", 5, 70, 1, .png(bitDepth: 16, compression: 1)),
            ("b.jpg", 45, 29, 3, .jpeg(quality: 90, progressive: false, fullChroma: false)),
            ("p.jpeg", 64, 8, 3, .jpeg(quality: 75, progressive: true, fullChroma: true)),
            ("gray.jpg", 1, 1, 1, .jpeg(quality: 90, progressive: false, fullChroma: false)),
        ]
        for (name, w, h, channels, encoding) in cases {
            let url = dir.appendingPathComponent(name)
            try gradientImage(width: w, height: h, channels: channels).write(to: url, as: encoding)
            XCTAssertEqual(try size(url), [w, h], name)
            let decoded = try Image(contentsOf: url)
            XCTAssertEqual([decoded.width, decoded.height], [w, h], name)
        }
    }

    /// Metadata before the frame header (EXIF thumbnails, ICC profiles, long text chunks) pushes it past the first
    /// read: the probe reads on.
    func testHeadersPastTheFirstReadAreFound() throws {
        let dir = try makeScratchFolder("header-far")
        let jpeg = try gradientImage(width: 40, height: 24).encoded(as: .jpeg(quality: 90, progressive: false, fullChroma: false))
        var padded = Array(jpeg.prefix(2))
        for _ in 0..<3 {
            let length = 60_000
            padded += [0xFF, 0xEF, UInt8((length) >> 8), UInt8(length & 0xFF)] + [UInt8](repeating: 0x41, count: length - 2)
        }
        padded += jpeg.dropFirst(2)
        let jpegURL = dir.appendingPathComponent("far.jpg")
        try writeBytes(padded, to: jpegURL)
        XCTAssertGreaterThan(padded.count, 2 << 16, "past the first two reads")
        XCTAssertEqual(try size(jpegURL), [40, 24])
        XCTAssertEqual(try Image(contentsOf: jpegURL).width, 40)

        let png = try gradientImage(width: 12, height: 31).encoded(as: .png(bitDepth: 8, compression: 6))
        let text = RawPNG.chunk("tEXt", Array("Comment".utf8) + [0] + [UInt8](repeating: 0x42, count: 300_000))
        let pngURL = dir.appendingPathComponent("far.png")
        try writeBytes(Array(png.prefix(33)) + text + Array(png.dropFirst(33)), to: pngURL)
        XCTAssertEqual(try size(pngURL), [12, 31])
    }

    func testBrokenHeadersAreErrorsNamingTheFile() throws {
        let dir = try makeScratchFolder("header-broken")
        let png = try gradientImage(width: 20, height: 10).encoded(as: .png(bitDepth: 8, compression: 6))
        let jpeg = try gradientImage(width: 20, height: 10).encoded(as: .jpeg(quality: 90, progressive: false, fullChroma: false))
        var badCRC = png
        badCRC[29] ^= 0xFF  // inside IHDR's CRC
        var huge = png
        huge[16...19] = [0, 1, 0x11, 0x70]  // width 70000, with IHDR's CRC recomputed
        huge[29...32] = ArraySlice(RawPNG.bigEndian(RawPNG.crc(Array(huge[12..<29]))))
        let sofOffset = (0..<(jpeg.count - 1)).first { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xC0 }!
        let cases: [(String, [UInt8], String)] = [
            ("cut.png", Array(png.prefix(20)), "truncated"),
            ("cut.jpg", Array(jpeg.prefix(sofOffset + 4)), "truncated"),
            ("crc.png", badCRC, "CRC"),
            ("huge.png", huge, "limit"),
            ("text.png", Array("not an image at all".utf8), "not a PNG or JPEG"),
            ("empty.png", [], "empty"),
        ]
        for (name, bytes, expected) in cases {
            let url = dir.appendingPathComponent(name)
            try writeBytes(bytes, to: url)
            XCTAssertThrowsError(try ImageHeader.size(of: url), name) { error in
                let message = "\(error)"
                XCTAssertTrue(message.contains(url.path), "\(name): \(message)")
                XCTAssertTrue(message.lowercased().contains(expected.lowercased()), "\(name): \(message)")
                XCTAssertFalse(message.contains("\n"), message)
            }
        }
        XCTAssertThrowsError(try ImageHeader.size(of: dir.appendingPathComponent("none.png"))) { error in
            XCTAssertTrue("\(error)".contains("no such file"), "\(error)")
        }
    }
}
