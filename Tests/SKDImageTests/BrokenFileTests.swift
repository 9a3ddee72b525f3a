// A folder of broken files, made here, that must all throw a Swift error naming the file — never crash the
// process (libjpeg's exit(), libpng's longjmp) and never hang.

import Foundation
import SKDImage
import SKDTensor
import XCTest

final class BrokenFileTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws { folder = try makeScratchFolder("broken") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    func testEveryBrokenFileThrowsAndNamesTheFile() throws {
        let image = gradientImage(width: 67, height: 45)
        let png = try image.encoded(as: .png())
        let jpeg = try image.encoded(as: .jpeg(quality: 90))
        let progressive = try image.encoded(as: .jpeg(quality: 90, progressive: true))
        var rng = SKDRandom(seed: 2024)
        func randomBytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }

        var broken: [(String, [UInt8])] = [("zero-bytes.png", [])]
        for cut in [1, 4, 8, 12, 20, 33, 40, 60, png.count / 2, png.count - 20, png.count - 12, png.count - 1] {
            broken.append(("truncated-\(cut).png", Array(png.prefix(cut))))
        }
        for (name, stream) in [("baseline", jpeg), ("progressive", progressive)] {
            for cut in [1, 2, 3, 10, 100, 300, stream.count / 2, stream.count - 10, stream.count - 2, stream.count - 1] {
                broken.append(("truncated-\(name)-\(cut).jpg", Array(stream.prefix(cut))))
            }
        }
        for n in [1, 7, 100, 5000] { broken.append(("random-\(n).bin", randomBytes(n))) }
        let pngSignature = Array(png.prefix(8)), jpegSOI: [UInt8] = [0xFF, 0xD8, 0xFF]
        for n in [0, 16, 3000] {
            broken.append(("png-signature-random-\(n).png", pngSignature + randomBytes(n)))
            broken.append(("jpeg-soi-random-\(n).jpg", jpegSOI + randomBytes(n)))
        }
        broken.append(("png-header-jpeg-body.png", Array(png.prefix(33)) + jpeg))
        broken.append(("png-signature-jpeg-body.png", pngSignature + jpeg))
        broken.append(("gif.png", Array("GIF89a".utf8) + randomBytes(50)))
        broken.append(("text.jpg", Array("hello, world\n".utf8)))
        // Valid headers claiming enormous images: must fail without attempting the allocation.
        for (name, side) in [("huge-side.png", 70_000), ("huge-area.png", 65_000)] {
            var bytes = RawPNG.make(width: 2, height: 2, colorType: 2, bitDepth: 8) { _, _, _ in 0 }
            var ihdr = Array(bytes[12..<29])  // "IHDR" + 13 data bytes
            let size = RawPNG.bigEndian(UInt32(side))
            ihdr.replaceSubrange(4..<12, with: size + size)
            bytes.replaceSubrange(16..<33, with: Array(ihdr[4...]) + RawPNG.bigEndian(RawPNG.crc(ihdr)))
            broken.append((name, bytes))
        }
        // A corrupt IDAT checksum.
        var badCRC = png
        badCRC[badCRC.count - 13] ^= 0xFF  // last byte of the IDAT CRC
        broken.append(("bad-crc.png", badCRC))

        for (name, bytes) in broken {
            try writeBytes(bytes, to: folder.appendingPathComponent(name))
        }
        for (name, _) in broken {
            let url = folder.appendingPathComponent(name)
            XCTAssertThrowsError(try Image(contentsOf: url), name) { error in
                guard let imageError = error as? ImageError else { return XCTFail("\(name): \(error) is not an ImageError") }
                XCTAssertEqual(imageError.url, url, name)
                XCTAssertTrue(imageError.description.contains(url.path), "\(name): \(imageError)")
            }
        }
        // The causes are told apart.
        XCTAssertThrowsError(try Image(contentsOf: folder.appendingPathComponent("zero-bytes.png"))) {
            XCTAssertEqual($0 as? ImageError, .emptyFile(folder.appendingPathComponent("zero-bytes.png")))
        }
        XCTAssertThrowsError(try Image(contentsOf: folder.appendingPathComponent("gif.png"))) {
            guard case ImageError.unrecognizedFormat(_, let lead) = $0 else { return XCTFail("\($0)") }
            XCTAssertTrue(lead.hasPrefix("47 49 46"))
        }
        XCTAssertThrowsError(try Image(contentsOf: folder.appendingPathComponent("truncated-\(png.count - 20).png"))) {
            guard case ImageError.decodeFailed(_, .png, let reason) = $0 else { return XCTFail("\($0)") }
            XCTAssertFalse(reason.isEmpty)
        }
        XCTAssertThrowsError(try Image(contentsOf: folder.appendingPathComponent("truncated-baseline-\(jpeg.count - 2).jpg"))) {
            guard case ImageError.decodeFailed(_, .jpeg, let reason) = $0 else { return XCTFail("\($0)") }
            XCTAssertTrue(reason.lowercased().contains("premature end"), reason)
        }
        XCTAssertThrowsError(try Image(contentsOf: folder.appendingPathComponent("truncated-4.png"))) {
            guard case ImageError.decodeFailed(_, .png, let reason) = $0 else { return XCTFail("\($0)") }
            XCTAssertTrue(reason.contains("truncated"), reason)
        }
        for name in ["huge-side.png", "huge-area.png"] {
            XCTAssertThrowsError(try Image(contentsOf: folder.appendingPathComponent(name))) {
                XCTAssertTrue("\($0)".contains("limit"), "\($0)")
            }
        }
    }

    func testMissingFileAndFolderThrow() {
        let missing = folder.appendingPathComponent("missing.png")
        XCTAssertThrowsError(try Image(contentsOf: missing)) {
            XCTAssertEqual($0 as? ImageError, .fileNotFound(missing))
            XCTAssertTrue("\($0)".contains("missing.png"))
        }
        XCTAssertThrowsError(try Image(contentsOf: folder)) {
            guard case ImageError.unreadable(let url, _) = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual(url, folder)
        }
    }

    /// Random byte flips inside valid files: each decode either throws or returns an image of the right size.
    /// (Some flips, e.g. in JPEG entropy data, change pixels without making the stream invalid.)
    func testCorruptedBytesNeverCrash() throws {
        let image = gradientImage(width: 40, height: 33, seed: 5)
        let sources = [try image.encoded(as: .png()), try image.encoded(as: .jpeg(quality: 85)),
                       try image.encoded(as: .jpeg(quality: 85, progressive: true))]
        var rng = SKDRandom(seed: 99)
        var threw = 0, decoded = 0
        for trial in 0..<300 {
            var bytes = sources[trial % 3]
            for _ in 0..<(1 + rng.int(below: 4)) {
                bytes[2 + rng.int(below: bytes.count - 2)] = UInt8(truncatingIfNeeded: rng.next())
            }
            do {
                let out = try Image(decoding: bytes, source: folder.appendingPathComponent("fuzz-\(trial)"))
                XCTAssertGreaterThan(out.width * out.height, 0)
                decoded += 1
            } catch is ImageError {
                threw += 1
            }
        }
        XCTAssertEqual(threw + decoded, 300)
        XCTAssertGreaterThan(threw, 50, "most corruptions are detected")
    }
}
