// Running the built `skd` as a subprocess, for the robustness tests (issue 14): status, output, and a way to
// start it in the background and signal it.

import Foundation
import SwiftSKD
import XCTest

/// `skd` started as a child process.
enum SKDProcess {
    /// The built `skd` next to the test bundle.
    static var executable: URL? { CommandLineTests.executable }

    /// Starts `skd arguments` with pipes on standard output and error.
    static func start(_ arguments: [String], in directory: URL? = nil) throws -> Process {
        guard let url = executable else {
            XCTFail("the skd executable is not next to the tests; build it with `swift build --build-tests`")
            throw XCTSkip("no skd executable")
        }
        let process = Process()
        process.executableURL = url
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        process.standardOutput = Pipe()
        process.standardError = Pipe()
        try process.run()
        return process
    }

    /// Reads both pipes to their end and waits for `process`.
    static func finish(_ process: Process) -> CommandResult {
        let out = process.standardOutput as! Pipe, err = process.standardError as! Pipe
        final class Box: @unchecked Sendable { var data = Data() }
        let outBox = Box()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { outBox.data = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        var result = CommandResult(status: process.terminationStatus, stdout: String(decoding: outBox.data, as: UTF8.self),
                                   stderr: String(decoding: errData, as: UTF8.self))
        result.terminationReason = process.terminationReason
        return result
    }

    /// Runs `skd arguments` to completion.
    @discardableResult
    static func run(_ arguments: [String], in directory: URL? = nil) throws -> CommandResult {
        finish(try start(arguments, in: directory))
    }
}

/// Fixtures shared by the robustness tests.
enum Fixtures {
    /// A deterministic photo-like RGB image.
    static func photo(_ width: Int, _ height: Int, seed: Int = 0) -> Image {
        var bytes = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height { for x in 0..<width { for c in 0..<3 {
            bytes[(y * width + x) * 3 + c] = UInt8((x * 9 + y * 5 + c * 70 + seed * 23 + (x * y) % 13) % 256)
        } } }
        return Image(width: width, height: height, channels: 3, bytes: bytes)
    }

    /// A folder of `count` PNGs `p0.png`…
    static func cleanFolder(_ root: URL, count: Int, width: Int = 24, height: Int = 24) throws -> URL {
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        for i in 0..<count { try photo(width, height, seed: i).write(to: root.appendingPathComponent("p\(i).png")) }
        return root
    }

    /// The tiny Restormer of the command-line tests.
    static let tinyRestormer: [String: Any] = ["arch": "restormer", "dim": 4, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 0,
                                              "heads": [1, 1, 1, 1]]

    /// A weights file of a freshly initialised tiny Restormer, its architecture in the `config` metadata.
    static func tinyWeights(_ url: URL, transform: ((inout [String: Tensor]) -> Void)? = nil) throws -> URL {
        let spec = try ModelSpec(dictionary: tinyRestormer)
        var state = spec.makeModel().stateDict()
        transform?(&state)
        try SafeTensors.write(state, metadata: ["config": spec.jsonString()], to: url)
        return url
    }

    /// Options of a tiny Restormer training run on `data`.
    static func tinyRun(data: URL, output: URL, iterations: Int, extra: [String] = []) -> [String] {
        ["train", "--model", "restormer", "--set", "network.model.dim=4", "--set", "network.model.num_blocks=[1,1,1,1]",
         "--set", "network.model.num_refinement_blocks=0", "--set", "network.model.heads=[1,1,1,1]",
         "--train-data", data.path, "--train-degradation", "noise:25", "--patch-size", "8", "--batch-size", "2",
         "--iterations", "\(iterations)", "--log-every", "1", "--checkpoint-every", "0", "--val-every", "0", "--output", output.path] + extra
    }
}

extension XCTestCase {
    /// Asserts a bad-input failure through the binary: status 2, one line on standard error containing every
    /// `expected` text, no crash dump, and (when given) no run folder created.
    func assertOneLineError(_ arguments: [String], mentions expected: [String], noFolder: URL? = nil, in directory: URL? = nil,
                            file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try SKDProcess.run(arguments, in: directory)
        XCTAssertEqual(r.status, 2, "skd \(arguments.joined(separator: " ")): \(r.stderr)", file: file, line: line)
        let lines = r.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, "expected one line, got: \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stderr.hasPrefix("skd: error: "), r.stderr, file: file, line: line)
        XCTAssertFalse(r.stderr.contains("NSCocoaErrorDomain") || r.stderr.contains("Fatal error") || r.stderr.contains("DecodingError"),
                       r.stderr, file: file, line: line)
        for e in expected { XCTAssertTrue(r.stderr.contains(e), "'\(r.stderr)' should mention '\(e)'", file: file, line: line) }
        if let noFolder {
            XCTAssertFalse(FileManager.default.fileExists(atPath: noFolder.path), "no work may start", file: file, line: line)
        }
    }
}
