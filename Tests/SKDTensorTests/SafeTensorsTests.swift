import Foundation
import SKDTensor
import SKDTestSupport
import XCTest

final class SafeTensorsTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("skd-safetensors-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    /// A file assembled byte by byte: length prefix, `header` as given (no padding), then `data`.
    private func rawFile(_ name: String, header: String, data: [UInt8]) throws -> URL {
        let url = folder.appendingPathComponent(name)
        let headerBytes = Array(header.utf8)
        var bytes: [UInt8] = []
        var n = UInt64(headerBytes.count)
        for _ in 0..<8 { bytes.append(UInt8(n & 0xFF)); n >>= 8 }
        bytes += headerBytes + data
        try Data(bytes).write(to: url)
        return url
    }

    private func floatBytes(_ values: [Float]) -> [UInt8] {
        values.flatMap { v -> [UInt8] in
            let b = v.bitPattern.littleEndian
            return [UInt8(b & 0xFF), UInt8((b >> 8) & 0xFF), UInt8((b >> 16) & 0xFF), UInt8(b >> 24)]
        }
    }

    /// Reading `url` must throw a `SafeTensorsError` whose message names the file and contains `cause`.
    private func assertReadFails(_ url: URL, _ cause: String, file: StaticString = #filePath, line: UInt = #line) {
        do {
            let contents = try SafeTensors.read(url)
            XCTFail("reading \(url.lastPathComponent) succeeded with \(contents.tensors.keys.sorted())", file: file, line: line)
        } catch let error as SafeTensorsError {
            let message = error.localizedDescription
            XCTAssertTrue(message.contains(url.path), "message lacks the path: \(message)", file: file, line: line)
            XCTAssertTrue(message.contains(cause), "message lacks '\(cause)': \(message)", file: file, line: line)
        } catch {
            XCTFail("unexpected error type \(type(of: error)): \(error)", file: file, line: line)
        }
    }

    // MARK: Round trip

    func testRoundTrip() throws {
        let tensors: [String: Tensor] = [
            "b.weight": randomTensor([3, 5, 2], seed: 1),
            "a": Tensor(shape: [2], values: [-0.0, .infinity]),
            "scalar": Tensor(Float(3.25)),
            "empty": Tensor(zeros: [0, 4]),
            "odd": randomTensor([7], seed: 2),  // 28 bytes: later offsets are not multiples of 8
        ]
        let metadata = ["config": "{\"arch\": \"restormer\", \"dim\": 8}", "note": "line1\nline2\t\\ é ✓", "empty": ""]
        let url = folder.appendingPathComponent("model.safetensors")
        try SafeTensors.write(tensors, metadata: metadata, to: url)

        let back = try SafeTensors.read(url)
        XCTAssertEqual(back.metadata, metadata)
        XCTAssertTrue(back.skipped.isEmpty)
        XCTAssertEqual(Set(back.tensors.keys), Set(tensors.keys))
        for (name, tensor) in tensors {
            let read = try XCTUnwrap(back.tensors[name])
            XCTAssertEqual(read.shape, tensor.shape, name)
            XCTAssertEqual(read.values.map(\.bitPattern), tensor.values.map(\.bitPattern), name)
            XCTAssertFalse(read.requiresGrad)
        }
        XCTAssertEqual(back.tensors["scalar"]?.item, 3.25)

        // Header: padded with spaces to 8 bytes, keys sorted, data in key order, offsets contiguous.
        let bytes = [UInt8](try Data(contentsOf: url))
        let n = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        XCTAssertEqual(n % 8, 0)
        let header = String(decoding: bytes[8..<(8 + n)], as: UTF8.self)
        XCTAssertTrue(header.hasPrefix("{\"__metadata__\":"), header)
        XCTAssertTrue(header.hasSuffix("}") || header.hasSuffix(" "))
        XCTAssertEqual(header.trimmingCharacters(in: .whitespaces).last, "}")
        let positions = ["a", "b.weight", "empty", "odd", "scalar"].map { header.range(of: "\"\($0)\":{\"dtype\"")!.lowerBound }
        XCTAssertEqual(positions, positions.sorted())
        XCTAssertEqual(bytes.count, 8 + n + 4 * (30 + 2 + 1 + 0 + 7))
        // "a" comes first in the data buffer: its 8 bytes are -0.0 and +inf.
        XCTAssertEqual(Array(bytes[(8 + n)..<(8 + n + 8)]), floatBytes([-0.0, .infinity]))

        // Deterministic: writing the same contents again gives identical bytes, and no temporary file remains.
        try SafeTensors.write(back.tensors, metadata: back.metadata, to: url)
        XCTAssertEqual([UInt8](try Data(contentsOf: url)), bytes)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["model.safetensors"])
    }

    func testWriteWithoutMetadataAndEmptyFile() throws {
        let url = folder.appendingPathComponent("nothing.safetensors")
        try SafeTensors.write([:], to: url)
        let back = try SafeTensors.read(url)
        XCTAssertTrue(back.tensors.isEmpty && back.metadata.isEmpty && back.skipped.isEmpty)
        XCTAssertEqual(try Data(contentsOf: url).count, 16)  // 8-byte length + "{}" padded to 8
    }

    func testWriteRejectsReservedNameAndMissingFolder() {
        let url = folder.appendingPathComponent("bad.safetensors")
        XCTAssertThrowsError(try SafeTensors.write(["__metadata__": Tensor(zeros: [1])], to: url)) { error in
            XCTAssertTrue("\(error)".contains(url.path), "\(error)")
        }
        let missing = folder.appendingPathComponent("no/such/folder/x.safetensors")
        XCTAssertThrowsError(try SafeTensors.write(["x": Tensor(zeros: [1])], to: missing)) { error in
            XCTAssertTrue("\(error)".contains(missing.path), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
    }

    // MARK: Other dtypes

    func testHalfBFloat16DoubleConvertedAndIntegersSkipped() throws {
        // F16: 1.0 = 0x3C00, -2.5 = 0xC100, smallest subnormal 2^-24 = 0x0001, 65504 = 0x7BFF.
        // BF16: 1.0 = 0x3F80, -3.0 = 0xC040. F64: 0.1. I64: [7, -1]. BOOL: [1].
        let header = """
        {"h":{"dtype":"F16","shape":[4],"data_offsets":[0,8]},\
        "bf":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},\
        "d":{"dtype":"F64","shape":[],"data_offsets":[12,20]},\
        "idx":{"dtype":"I64","shape":[2],"data_offsets":[20,36]},\
        "mask":{"dtype":"BOOL","shape":[1],"data_offsets":[36,37]}}
        """
        var data: [UInt8] = [0x00, 0x3C, 0x00, 0xC1, 0x01, 0x00, 0xFF, 0x7B, 0x80, 0x3F, 0x40, 0xC0]
        let d = (0.1 as Double).bitPattern
        data += (0..<8).map { UInt8((d >> (8 * UInt64($0))) & 0xFF) }
        data += [7, 0, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 0xFF, count: 8) + [1]
        let url = try rawFile("mixed.safetensors", header: header, data: data)
        let file = try SafeTensors.read(url)
        XCTAssertEqual(file.tensors["h"]?.values, [1.0, -2.5, 5.9604645e-08, 65504])
        XCTAssertEqual(file.tensors["bf"]?.values, [1.0, -3.0])
        XCTAssertEqual(file.tensors["d"]?.shape, [])
        XCTAssertEqual(file.tensors["d"]?.item, Float(0.1))
        XCTAssertEqual(Set(file.skipped.keys), ["idx", "mask"])
        XCTAssertTrue(file.skipped["idx"]!.contains("I64"), file.skipped["idx"]!)
        XCTAssertNil(file.tensors["idx"])
    }

    // MARK: Corrupt files

    func testCorruptFilesThrowWithPath() throws {
        let good = #"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        let twoFloats = floatBytes([1, 2])

        assertReadFails(folder.appendingPathComponent("missing.safetensors"), "cannot read")

        let short = folder.appendingPathComponent("short.safetensors")
        try Data([1, 2, 3, 4, 5]).write(to: short)
        assertReadFails(short, "fewer than the 8-byte header length")

        // A length prefix larger than the file.
        let long = folder.appendingPathComponent("long.safetensors")
        try Data([0x00, 0x10, 0, 0, 0, 0, 0, 0] + Array("{}".utf8)).write(to: long)
        assertReadFails(long, "header length 4096 exceeds")

        assertReadFails(try rawFile("json.safetensors", header: "{\"x\": [1, 2", data: []), "not valid JSON")
        assertReadFails(try rawFile("array.safetensors", header: "[1, 2]", data: []), "not an object")
        assertReadFails(try rawFile("dtype.safetensors", header: good.replacingOccurrences(of: "F32", with: "F17"), data: twoFloats),
                        "unknown dtype F17")
        assertReadFails(try rawFile("size.safetensors", header: good.replacingOccurrences(of: "[2]", with: "[3]"), data: twoFloats),
                        "needs 12")
        assertReadFails(try rawFile("shape.safetensors", header: good.replacingOccurrences(of: "[2]", with: "[-2]"), data: twoFloats),
                        "\"shape\"")
        assertReadFails(try rawFile("reversed.safetensors", header: good.replacingOccurrences(of: "[0,8]", with: "[8,0]"), data: twoFloats),
                        "reversed")
        assertReadFails(try rawFile("range.safetensors", header: good, data: Array(twoFloats.prefix(4))),
                        "exceed the 4-byte data buffer")
        let overlapping = #"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        assertReadFails(try rawFile("overlap.safetensors", header: overlapping, data: floatBytes([1, 2, 3])), "overlap")
        let badMetadata = #"{"__metadata__":{"n":3},"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        assertReadFails(try rawFile("metadata.safetensors", header: badMetadata, data: twoFloats), "__metadata__")

        // A file we wrote, cut short as by an interrupted copy.
        let cut = folder.appendingPathComponent("cut.safetensors")
        try SafeTensors.write(["w": randomTensor([4, 4], seed: 3), "b": randomTensor([4], seed: 4)], to: cut)
        let whole = try Data(contentsOf: cut)
        try whole.prefix(whole.count - 5).write(to: cut)
        assertReadFails(cut, "truncated?")
    }

    // MARK: Reference file

    func testReadsReferenceRestormerFile() throws {
        guard let url = try referenceFile("golden/restormer_tiny.safetensors") else { return }
        let file = try SafeTensors.read(url)
        XCTAssertEqual(file.tensors.count, 231)
        XCTAssertTrue(file.skipped.isEmpty)
        XCTAssertEqual(file.tensors["patch_embed.proj.weight"]?.shape, [8, 3, 3, 3])
        XCTAssertEqual(file.tensors["input"]?.shape, [1, 3, 16, 16])
        XCTAssertEqual(file.tensors["encoder_level1.0.attn.temperature"]?.shape, [1, 1, 1])
        XCTAssertTrue(file.metadata["config"]?.contains("restormer") ?? false, "\(file.metadata)")
        // Values read independently with Python's struct + json: first, middle (index count/2) and last element.
        let weight = try XCTUnwrap(file.tensors["patch_embed.proj.weight"]).values
        XCTAssertEqual(weight[0], 0.005902647972106934)
        XCTAssertEqual(weight[108], 0.22057926654815674)
        XCTAssertEqual(weight[215], -0.07626365125179291)
        let input = try XCTUnwrap(file.tensors["input"]).values
        XCTAssertEqual(input[0], 0.5152631998062134)
        XCTAssertEqual(input[384], -0.6462255716323853)
        XCTAssertEqual(input[767], 0.23310065269470215)
        XCTAssertEqual(file.tensors["output"]?.values[0], 2.231961965560913)
        XCTAssertEqual(file.tensors["encoder_level1.0.attn.temperature"]?.item, 1.176104187965393)
    }
}
