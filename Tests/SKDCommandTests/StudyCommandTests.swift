import Foundation
import SKDTestSupport
import XCTest

/// `skd study` on bad options files: one line naming the file and the key, before any work.
final class StudyCommandTests: XCTestCase {
    func testBadStudyFilesGetOneLineBeforeAnyWork() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-study-cli")
        let output = dir.appendingPathComponent("study")
        let missing = dir.appendingPathComponent("missing.yml")
        try assertOneLineError(["study", missing.path], mentions: [missing.path], noFolder: output)
        let file = dir.appendingPathComponent("study.yml")
        let head = "datasets:\n  train: {root: \(dir.path), degradation: \"noise:25\"}\nstudy:\n  output: \(output.path)\n  test: {root: \(dir.path)}\n"
        for (body, key) in [("  runs:\n    - {name: a, method: none, extra: 1}\n", "study.runs[0].extra"),
                            ("  runs:\n    - {name: a, method: nope}\n", "study.runs[0].method"),
                            ("  teacher_cache_mb: -1\n  runs:\n    - {name: a, method: none}\n", "study.teacher_cache_mb"),
                            ("  runs:\n    - {name: a, method: none, set: [datasets.train.batch_size=2]}\n", "study.runs[0].set")] {
            try Data((head + body).utf8).write(to: file)
            try assertOneLineError(["study", file.path], mentions: [file.path, key], noFolder: output)
        }
    }
}
