// `skd info --system` as a user meets it: the CPU, the BLAS core in use, and a warning when it is below the CPU.

import Foundation
import SwiftSKD
import XCTest

final class SystemInfoCommandTests: XCTestCase {
    private func info(environment: [String: String]) throws -> (status: Int32, output: String) {
        guard let executable = CommandLineTests.executable else {
            XCTFail("the skd executable is not next to the tests; build it with `swift build --build-tests`")
            throw XCTSkip("no skd executable")
        }
        let process = Process()
        process.executableURL = executable
        process.arguments = ["info", "--system"]
        var env = ProcessInfo.processInfo.environment
        env["OPENBLAS_CORETYPE"] = nil
        env.merge(environment) { $1 }
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// As OpenBLAS loads (no OPENBLAS_CORETYPE): the core in use is as wide as the CPU allows, no warning.
    func testReportsTheCoreInUse() throws {
        let (status, output) = try info(environment: [:])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("cpu: "), output)
        XCTAssertTrue(output.contains("blas core: "), output)
        XCTAssertTrue(output.contains("\(CPUInfo.current.vectorLevel)"), output)
        if BLASKernelSelection.level(ofCore: BLAS.kernelSelection.coreAtLoad ?? "") != nil {
            XCTAssertFalse(output.contains("warning:"), output)
        }
    }

    /// The user's choice is kept, and when it is below the CPU the report says so.
    func testUserCoreIsKeptAndWarned() throws {
        let (status, output) = try info(environment: ["OPENBLAS_CORETYPE": "Prescott"])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("blas core: Prescott"), output)
        XCTAssertTrue(output.contains("OPENBLAS_CORETYPE=Prescott set by the user"), output)
        if CPUInfo.current.vectorLevel > .sse {
            XCTAssertTrue(output.contains("warning: OpenBLAS runs its Prescott kernels"), output)
        }
    }
}
