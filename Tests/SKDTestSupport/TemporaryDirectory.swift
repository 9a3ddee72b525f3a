// Scratch folders for tests that write files.

import Foundation
import XCTest

extension XCTestCase {
    /// A new empty folder under the system's temporary directory, removed when the test ends.
    ///
    /// - Parameter prefix: the start of the folder's name, to tell the tests' folders apart.
    public func makeTemporaryDirectory(prefix: String = "skd-test") throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }
}
