// `skd export` as a user meets it: the ONNX file is written (atomically, never over the model or an existing
// file without --overwrite), and bad arguments are one-line errors before any work.

import Foundation
import SKDTestSupport
import SwiftSKD
import XCTest

final class ExportCommandTests: XCTestCase {
    func testExportWritesAnONNXFileAndNothingElse() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-export")
        defer { try? FileManager.default.removeItem(at: dir) }
        let weights = try Fixtures.tinyWeights(dir.appendingPathComponent("tiny.safetensors"))
        let onnx = dir.appendingPathComponent("tiny.onnx")
        let r = try SKDProcess.run(["export", weights.path, "--onnx", onnx.path, "--height", "16", "--width", "24"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("restormer -> \(onnx.path)") && r.stdout.contains("[1, C, 16, 24]"), r.stdout)
        let bytes = try Data(contentsOf: onnx)
        XCTAssertGreaterThan(bytes.count, 1000)
        // ModelProto starts with ir_version (field 1, varint) = 8.
        XCTAssertEqual(Array(bytes.prefix(2)), [0x08, 0x08])
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: dir.path)), ["tiny.safetensors", "tiny.onnx"], "no temporary file may stay")

        // An existing file is kept unless --overwrite; with it, replaced.
        try assertOneLineError(["export", weights.path, "--onnx", onnx.path], mentions: ["already exists", "--overwrite"])
        XCTAssertEqual(try Data(contentsOf: onnx), bytes)
        let again = try SKDProcess.run(["export", weights.path, "--onnx", onnx.path, "--dynamic", "--overwrite"])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stdout.contains("[batch, C, height, width]"), again.stdout)
    }

    func testBadArgumentsAreOneLineErrors() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-export")
        defer { try? FileManager.default.removeItem(at: dir) }
        let weights = try Fixtures.tinyWeights(dir.appendingPathComponent("tiny.safetensors"))
        let onnx = dir.appendingPathComponent("out.onnx")
        try assertOneLineError(["export", weights.path], mentions: ["--onnx"])
        try assertOneLineError(["export", weights.path, "--onnx", onnx.path, "--height", "16"], mentions: ["--height needs --width"])
        try assertOneLineError(["export", weights.path, "--onnx", onnx.path, "--width", "16"], mentions: ["--width needs --height"])
        try assertOneLineError(["export", weights.path, "--onnx", onnx.path, "--height", "16", "--width", "16", "--dynamic"],
                               mentions: ["--dynamic", "exclude"])
        try assertOneLineError(["export", weights.path, "--onnx", onnx.path, "--height", "0", "--width", "16"], mentions: ["--height 0"])
        try assertOneLineError(["export", weights.path, "--onnx", weights.path, "--overwrite"], mentions: ["is the model"])
        try assertOneLineError(["export", dir.appendingPathComponent("missing.safetensors").path, "--onnx", onnx.path],
                               mentions: ["missing.safetensors"])
        try assertOneLineError(["export", weights.path, "--onnx", dir.appendingPathComponent("no/such/out.onnx").path], mentions: ["no/such"])
        try assertOneLineError(["export", weights.path, "--onnx", dir.path], mentions: ["is a folder"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: onnx.path))
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: dir.path)), ["tiny.safetensors"])
    }

    func testDRSformerExports() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-export")
        defer { try? FileManager.default.removeItem(at: dir) }
        let spec = try ModelSpec(dictionary: ["arch": "drsformer", "dim": 8, "num_blocks": [1, 1, 1, 1], "heads": [1, 1, 1, 1]])
        let weights = dir.appendingPathComponent("drs.safetensors")
        try SafeTensors.write(spec.makeModel().stateDict(), metadata: ["config": spec.jsonString()], to: weights)
        let r = try SKDProcess.run(["export", weights.path, "--onnx", dir.appendingPathComponent("drs.onnx").path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix("drsformer -> "), r.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("drs.onnx").path))
    }
}
