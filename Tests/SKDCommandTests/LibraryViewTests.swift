// The library users' view of the package: `import SwiftSKD` without package access must still build a model, load
// weights, run it and train/distil (Tests/LibraryView/UserProgram.swift), and must not see the `package` internals.

import Foundation
import XCTest

final class LibraryViewTests: XCTestCase {
    /// The folder of the built modules (next to the `skd` executable), or a skip.
    private func buildDirectory() throws -> URL {
        guard let skd = CommandLineTests.executable else { throw XCTSkip("no skd executable next to the tests") }
        return skd.deletingLastPathComponent()
    }

    /// `swiftc -typecheck` of `file` against the built modules, as a dependent package compiles (no -package-name).
    private func typecheck(_ file: URL) throws -> (status: Int32, output: String) {
        let build = try buildDirectory()
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let system = root.appendingPathComponent("CSystem")
        var arguments = ["swiftc", "-typecheck", file.path, "-I", build.appendingPathComponent("Modules").path]
        for library in ["COpenBLAS", "CLAPACKE", "CPNG", "CJPEG"] { arguments += ["-I", system.appendingPathComponent(library).path] }
        for shim in ["CImageShim", "CSKDKernels"] {
            arguments += ["-I", system.appendingPathComponent(shim).appendingPathComponent("include").path,
                          "-Xcc", "-fmodule-map-file=" + build.appendingPathComponent("\(shim).build/module.modulemap").path]
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        (process.standardOutput, process.standardError) = (Pipe(), Pipe())
        try process.run()
        let result = SKDProcess.finish(process)
        if result.status == 127 { throw XCTSkip("swiftc is not on PATH") }
        return (result.status, result.stdout + result.stderr)
    }

    func testUserProgramTypeChecksWithThePublicAPIOnly() throws {
        let program = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("LibraryView/UserProgram.swift")
        let result = try typecheck(program)
        XCTAssertEqual(result.status, 0, result.output)
    }

    func testPackageInternalsAreInvisibleToUsers() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("skd-library-view-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let uses = ["_ = Tensor(zeros: [2]).pointer", "_ = BLAS.threads", "_ = Parallel.threads", "_ = VectorRows.level",
                    "_ = Restormer(config: RestormerConfig()).patch_embed"]
        for use in uses {
            let file = directory.appendingPathComponent("Use.swift")
            try "import SwiftSKD\n\(use)\n".write(to: file, atomically: true, encoding: .utf8)
            let result = try typecheck(file)
            XCTAssertNotEqual(result.status, 0, "\(use) should not compile for a library user")
            XCTAssertTrue(result.output.contains("error:"), result.output)
            XCTAssertFalse(result.output.contains("missing required module"), result.output)
        }
    }
}
