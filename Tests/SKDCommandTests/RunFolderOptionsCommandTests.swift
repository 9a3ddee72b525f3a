// The `options.yml` a real run writes: it reads back to the options the run's checkpoint stored, and writing it
// again gives the same text.

import Foundation
import SKDTestSupport
import SwiftSKD
import XCTest

final class RunFolderOptionsCommandTests: XCTestCase {
    func testRunFolderOptionsFileReadsBackToTheCheckpointsOptions() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-options-file")
        let data = try Fixtures.cleanFolder(dir.appendingPathComponent("data"), count: 2)
        let run = dir.appendingPathComponent("run")
        // A degradation with a space after the colon (the case), a learning rate as a user writes it, and
        // a distillation-only flag that a training run ignores.
        var arguments = Fixtures.tinyRun(data: data, output: run, iterations: 2, extra: ["--lr", "1e-3", "--min-lr", "1e-6"])
        if let i = arguments.firstIndex(of: "--train-degradation") { arguments[i + 1] = "noise: 25" }
        let r = try SKDProcess.run(arguments)
        XCTAssertEqual(r.status, 0, r.stderr)

        let file = run.appendingPathComponent("options.yml")
        let text = try String(contentsOf: file, encoding: .utf8)
        XCTAssertTrue(text.contains("degradation: 'noise: 25'"), text)
        XCTAssertTrue(text.contains("\n  lr: 0.001\n"), text)
        XCTAssertTrue(text.contains("\n  min_lr: 1.0e-06\n"), text)
        let written = try RunConfiguration.load(yaml: file, mode: .train)
        let (stored, _) = try RunConfiguration.resuming(run)
        XCTAssertEqual(written, stored, "options.yml and the checkpoint's options agree")
        XCTAssertEqual(written.yamlString(), text, "options.yml is written as the schema writes it")
        XCTAssertEqual(written.trainData?.degradation, "noise: 25")
        XCTAssertEqual(written.training.learningRate, 1e-3)

        // The file starts a new run as it stands.
        let again = dir.appendingPathComponent("again")
        let second = try SKDProcess.run(["train", "--config", file.path, "--output", again.path])
        XCTAssertEqual(second.status, 0, second.stderr)
        var expected = written
        expected.output = again.path
        XCTAssertEqual(try RunConfiguration.load(yaml: again.appendingPathComponent("options.yml"), mode: .train), expected)
    }
}
