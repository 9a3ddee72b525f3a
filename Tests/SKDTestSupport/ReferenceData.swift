// Locating the read-only reference data (/work/shared in development) from tests.
//
// The data never enters the repository. Tests look for it in `$SKD_REFERENCE_DIR`, else in `../shared`
// next to the package root. A missing file skips the test with a printed reason, except under CI (`CI=true`),
// where it is a failure: CI must never go green by silently skipping every reference comparison.

import Foundation
import XCTest

/// The reference-data folder: `$SKD_REFERENCE_DIR` when set, else `<package root>/../shared`; `nil` when that
/// folder does not exist.
public func referenceDirectory() -> URL? {
    let fileManager = FileManager.default
    if let override = ProcessInfo.processInfo.environment["SKD_REFERENCE_DIR"], !override.isEmpty {
        let url = URL(fileURLWithPath: override, isDirectory: true)
        return fileManager.fileExists(atPath: url.path) ? url : nil
    }
    // This file is <root>/Tests/SKDTestSupport/ReferenceData.swift; the working directory of `swift test` is not
    // guaranteed to be the package root, the source location is.
    let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let shared = packageRoot.deletingLastPathComponent().appendingPathComponent("shared", isDirectory: true)
    return fileManager.fileExists(atPath: shared.path) ? shared : nil
}

/// Whether missing reference data is a failure (`CI=true` in the environment) rather than a skip.
public var referenceDataRequired: Bool {
    ProcessInfo.processInfo.environment["CI"]?.lowercased() == "true"
}

/// The URL of a reference file, applying the project's rule for missing data.
///
/// - Parameter relativePath: a path inside the reference folder, e.g. `"golden/restormer_tiny.safetensors"`.
/// - Returns: the file's URL when it exists. When it is missing under `CI=true`, records a test failure and
///   returns `nil` (the caller returns early).
/// - Throws: `XCTSkip` naming the missing path when it is missing outside CI, which marks the test skipped.
///
/// Use: `guard let url = try referenceFile("golden/x.safetensors") else { return }`.
public func referenceFile(_ relativePath: String, file: StaticString = #filePath, line: UInt = #line) throws -> URL? {
    let reason: String
    if let directory = referenceDirectory() {
        let url = directory.appendingPathComponent(relativePath)
        if FileManager.default.fileExists(atPath: url.path) { return url }
        reason = "reference file \(url.path) not found"
    } else {
        reason = "reference folder not found (set SKD_REFERENCE_DIR or place it at ../shared next to the package), needed for \(relativePath)"
    }
    if referenceDataRequired {
        XCTFail("CI=true and \(reason)", file: file, line: line)
        return nil
    }
    print("Skipping: \(reason)")
    throw XCTSkip(reason, file: file, line: line)
}
