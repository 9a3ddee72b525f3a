import SKDDistill
import XCTest

extension XCTestCase {
    /// The message of the `RunConfigurationError` that `body` throws, checked to be one line; fails when `body`
    /// throws nothing or another type (then returns "").
    func message(_ body: () throws -> Any, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try body()
            XCTFail("expected a RunConfigurationError", file: file, line: line)
        } catch let error as RunConfigurationError {
            XCTAssertFalse(error.message.contains("\n"), "not one line: \(error.message)", file: file, line: line)
            return error.message
        } catch {
            XCTFail("expected a RunConfigurationError, got \(type(of: error)): \(error)", file: file, line: line)
        }
        return ""
    }
}
