// The `skd` executable as a user meets it: exit codes, one-line errors before any work, help with defaults,
// interrupt and resume, evaluation files, restoration at odd sizes, reference checks.

import Foundation
import SKDTestSupport
import SwiftSKD
import XCTest

/// The result of one `skd` invocation.
struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
    /// How the process ended (a normal exit, or a signal).
    var terminationReason: Process.TerminationReason = .exit
}

final class CommandLineTests: XCTestCase {
    /// The built `skd` next to the test bundle (`swift build --build-tests` builds every product).
    static let executable: URL? = {
        let fm = FileManager.default
        var candidates = [Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent()]
        for bundle in Bundle.allBundles { candidates.append(bundle.bundleURL.deletingLastPathComponent()) }
        return candidates.map { $0.appendingPathComponent("skd") }.first { fm.isExecutableFile(atPath: $0.path) }
    }()

    /// Runs `skd arguments` to completion.
    @discardableResult
    private func run(_ arguments: [String], in directory: URL? = nil) throws -> CommandResult {
        try SKDProcess.run(arguments, in: directory)
    }

    private func start(_ arguments: [String], in directory: URL? = nil) throws -> Process {
        try SKDProcess.start(arguments, in: directory)
    }

    private func temporaryDirectory() throws -> URL { try makeTemporaryDirectory(prefix: "skd-cli") }

    private func photo(_ width: Int, _ height: Int, seed: Int = 0) -> Image { Fixtures.photo(width, height, seed: seed) }

    private func cleanFolder(_ root: URL, count: Int, width: Int = 24, height: Int = 24) throws -> URL {
        try Fixtures.cleanFolder(root, count: count, width: width, height: height)
    }

    /// Options of a tiny Restormer training run on `data`.
    private func tinyRun(data: URL, output: URL, iterations: Int) -> [String] {
        ["train", "--model", "restormer", "--set", "network.model.dim=4", "--set", "network.model.num_blocks=[1,1,1,1]",
         "--set", "network.model.num_refinement_blocks=0", "--set", "network.model.heads=[1,1,1,1]",
         "--train-data", data.path, "--train-degradation", "noise:25", "--patch-size", "8", "--batch-size", "2",
         "--iterations", "\(iterations)", "--log-every", "1", "--checkpoint-every", "0", "--val-every", "0", "--output", output.path]
    }

    /// Asserts a bad-input failure: status 2, one line on standard error containing every `expected` text, and no
    /// run folder created.
    private func assertBadInput(_ arguments: [String], mentions expected: [String], runFolder: URL? = nil,
                                file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try run(arguments)
        XCTAssertEqual(r.status, 2, "stderr: \(r.stderr)", file: file, line: line)
        let lines = r.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, "expected one line, got: \(r.stderr)", file: file, line: line)
        for e in expected { XCTAssertTrue(r.stderr.contains(e), "'\(r.stderr)' should mention '\(e)'", file: file, line: line) }
        if let runFolder {
            XCTAssertFalse(FileManager.default.fileExists(atPath: runFolder.path), "no work may start", file: file, line: line)
        }
    }

    // MARK: - Bad input

    func testBadInputGetsOneLineBeforeAnyWork() throws {
        let dir = try temporaryDirectory()
        let run = dir.appendingPathComponent("run")
        let good = try cleanFolder(dir.appendingPathComponent("good"), count: 2)

        let missing = dir.appendingPathComponent("missing-folder")
        try assertBadInput(tinyRun(data: missing, output: run, iterations: 5), mentions: [missing.path, "no such folder"], runFolder: run)

        try assertBadInput(["train", "--model", "restormer-xl", "--train-data", good.path, "--output", run.path],
                           mentions: ["restormer-xl", "restormer-s"], runFolder: run)

        let small = try cleanFolder(dir.appendingPathComponent("small"), count: 1, width: 30, height: 6)
        try assertBadInput(tinyRun(data: small, output: run, iterations: 5), mentions: ["p0.png", "30x6", "8x8"], runFolder: run)

        let broken = try cleanFolder(dir.appendingPathComponent("broken"), count: 3)
        try Data([0x89, 0x50, 0x4E, 0x47, 0, 1, 2]).write(to: broken.appendingPathComponent("p1.png"))
        try assertBadInput(tinyRun(data: broken, output: run, iterations: 5), mentions: [broken.appendingPathComponent("p1.png").path], runFolder: run)

        let pairs = dir.appendingPathComponent("pairs")
        for sub in ["input", "target"] { _ = try cleanFolder(pairs.appendingPathComponent(sub), count: 2) }
        try photo(24, 24).write(to: pairs.appendingPathComponent("target/extra.png"))
        var paired = tinyRun(data: pairs, output: run, iterations: 5)
        paired.removeSubrange(paired.firstIndex(of: "--train-degradation")!...paired.firstIndex(of: "--train-degradation")! + 1)
        try assertBadInput(paired, mentions: ["extra.png", "unpaired"], runFolder: run)

        let uformer = dir.appendingPathComponent("uformer.safetensors")
        try SafeTensors.write(["w": Tensor(zeros: [1])], metadata: ["config": try ModelSpec.preset("uformer-s").jsonString()], to: uformer)
        try assertBadInput(["distill", "--teacher", uformer.path, "--student", "restormer-s", "--train-data", good.path,
                            "--train-degradation", "noise:25", "--output", run.path],
                           mentions: ["family mismatch", uformer.path], runFolder: run)

        let yaml = dir.appendingPathComponent("bad.yml")
        try Data("train:\n  iterations: 5\n  lerning_rate: 0.1\n".utf8).write(to: yaml)
        try assertBadInput(["train", "--config", yaml.path], mentions: [yaml.path, "train.lerning_rate"], runFolder: nil)

        // A file that relies on a flag for what it lacks is not blamed for it.
        let partial = dir.appendingPathComponent("partial.yml")
        try Data("datasets:\n  train: {patch_size: 8, degradation: \"noise:5\"}\nnetwork: {model: restormer-s}\n".utf8).write(to: partial)
        try assertBadInput(["train", "--config", partial.path, "--train-data", good.path, "--iterations", "0", "--output", run.path],
                           mentions: ["train.iterations must be positive"], runFolder: run)
        try assertBadInput(["train", "--config", partial.path, "--model", "restormer-xl", "--train-data", good.path],
                           mentions: ["options: network.model", "restormer-xl"], runFolder: nil)

        try assertBadInput(["eval", "--data", missing.path, "--model", uformer.path], mentions: [missing.path])
        try assertBadInput(["restore", missing.path, "--model", uformer.path, "--output", dir.appendingPathComponent("out").path],
                           mentions: [missing.path])
        try assertBadInput(["info", "restormer-xl"], mentions: ["restormer-xl"])
    }

    func testHelpExplainsEveryOptionWithItsDefault() throws {
        let r = try run(["distill", "--help"])
        XCTAssertEqual(r.status, 0)
        for text in ["--alpha2", "(default: 0.2)", "--sigma", "(default: 1.0)", "--spatial-token-threshold", "(default: 4096)",
                     "--lr", "(default: 0.0002)", "--batch-size", "(default: 8)", "--patch-size", "(default: 128)",
                     "--no-contrastive", "--no-channel-branch", "--no-spatial-branch", "--method", "(default: skd)", "--config", "--set"] {
            XCTAssertTrue(r.stdout.contains(text), "distill --help lacks \(text)")
        }
        // Every option of every command states its default or that it is required.
        for command in ["train", "distill", "eval", "restore", "info", "plot", "reference-check", "demo", "study"] {
            let help = try run([command, "--help"]).stdout
            var options: [String] = [], current = ""
            for line in help.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
                if line.hasPrefix("  -") {
                    if !current.isEmpty { options.append(current) }
                    current = line
                } else if line.hasPrefix("      "), !current.isEmpty {
                    current += " " + line.trimmingCharacters(in: .whitespaces)
                } else {
                    if !current.isEmpty { options.append(current) }
                    current = ""
                }
            }
            XCTAssertFalse(options.isEmpty, "\(command) --help lists no options")
            for option in options where !option.contains("--help") {
                XCTAssertTrue(option.contains("(default:") || option.contains("(required"),
                              "\(command): option without its default in the help: \(option)")
            }
        }
    }

    // MARK: - Training, interruption and resume

    private func losses(_ log: URL) throws -> [Int: [String: Double]] {
        var out: [Int: [String: Double]] = [:]
        for line in try String(contentsOf: log, encoding: .utf8).split(separator: "\n") {
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            var terms: [String: Double] = [:]
            for (k, v) in object where !["iter", "seconds"].contains(k) { terms[k] = (v as? NSNumber)?.doubleValue }
            out[(object["iter"] as! NSNumber).intValue] = terms
        }
        return out
    }

    func testInterruptedRunResumesToTheUninterruptedLosses() throws {
        let dir = try temporaryDirectory()
        let data = try cleanFolder(dir.appendingPathComponent("data"), count: 3)
        let iterations = 400
        let straight = dir.appendingPathComponent("straight"), interrupted = dir.appendingPathComponent("interrupted")
        let a = try run(tinyRun(data: data, output: straight, iterations: iterations))
        XCTAssertEqual(a.status, 0, a.stderr)

        // SIGINT once the run is under way: a checkpoint is written and the exit status says so.
        let process = try start(tinyRun(data: data, output: interrupted, iterations: iterations))
        let log = interrupted.appendingPathComponent("log.jsonl")
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            if let text = try? String(contentsOf: log, encoding: .utf8), text.split(separator: "\n").count >= 20 { break }
            usleep(2000)
        }
        process.interrupt()
        let stderr = String(decoding: (process.standardError as! Pipe).fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 130, stderr)
        XCTAssertTrue(stderr.contains("--resume"), stderr)
        let stoppedAt = try losses(log).keys.max() ?? 0
        XCTAssertLessThan(stoppedAt, iterations, "the run must be stopped before its end for this test to mean anything")
        XCTAssertTrue(FileManager.default.fileExists(atPath: interrupted.appendingPathComponent("training.png").path), "the plot is drawn on interruption too")

        // Other options next to --resume are refused; the stored ones are used.
        let refused = try run(["train", "--resume", interrupted.path, "--iterations", "5"])
        XCTAssertEqual(refused.status, 2)
        XCTAssertTrue(refused.stderr.contains("--resume"), refused.stderr)
        let resumed = try run(["train", "--resume", interrupted.path])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resumed from"), resumed.stderr)

        let expected = try losses(straight.appendingPathComponent("log.jsonl")), got = try losses(log)
        XCTAssertEqual(Set(expected.keys), Set(got.keys))
        for (iter, terms) in expected {
            for (name, value) in terms {
                let other = try XCTUnwrap(got[iter]?[name], "iteration \(iter) lacks \(name)")
                XCTAssertEqual(other, value, accuracy: 1e-6 * max(1, abs(value)), "iteration \(iter), \(name)")
            }
        }

        // The trained model is accepted by eval (paired with synthetic noise), restore and info.
        let json = dir.appendingPathComponent("eval.json"), csv = dir.appendingPathComponent("eval.csv")
        let e = try run(["eval", "--data", data.path, "--degradation", "noise:25", "--model", "tiny=\(straight.path)",
                         "--json", json.path, "--csv", csv.path, "--macs-size", "64"])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertTrue(e.stdout.contains("input (degraded)") && e.stdout.contains("tiny") && e.stdout.contains("GMACs@64"), e.stdout)
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [[String: Any]])
        XCTAssertEqual(rows.map { $0["model"] as? String }, ["input (degraded)", "tiny"])
        XCTAssertEqual((rows[1]["images"] as? NSNumber)?.intValue, 3)
        XCTAssertNotNil(rows[1]["ms_per_image"] as? NSNumber)
        XCTAssertEqual(try String(contentsOf: csv, encoding: .utf8).split(separator: "\n").count, 3)

        let odd = dir.appendingPathComponent("odd.png")
        try photo(13, 11).write(to: odd)
        let out = dir.appendingPathComponent("restored")
        let r = try run(["restore", odd.path, data.path, "--model", straight.appendingPathComponent("best.safetensors").path,
                         "--output", out.path, "--tile", "8", "--tile-overlap", "2"])
        if FileManager.default.fileExists(atPath: straight.appendingPathComponent("best.safetensors").path) {
            XCTAssertEqual(r.status, 0, r.stderr)
        } else {
            // Without validation there is no best.safetensors: the run folder itself is the model.
            XCTAssertEqual(r.status, 2, r.stderr)
            XCTAssertEqual(try run(["restore", odd.path, data.path, "--model", straight.path, "--output", out.path,
                                    "--tile", "8", "--tile-overlap", "2"]).status, 0)
        }
        let restored = try Image(contentsOf: out.appendingPathComponent("odd.png"))
        XCTAssertEqual([restored.width, restored.height], [13, 11])
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("p2.png").path))

        let info = try run(["info", straight.path, "restormer-s", "--height", "64", "--width", "64"])
        XCTAssertEqual(info.status, 0, info.stderr)
        XCTAssertTrue(info.stdout.contains("6.071"), info.stdout)
    }

    func testOptionsFileIsReadAndFlagsOverrideIt() throws {
        let dir = try temporaryDirectory()
        let data = try cleanFolder(dir.appendingPathComponent("data"), count: 2)
        let val = try cleanFolder(dir.appendingPathComponent("val"), count: 1, width: 16, height: 16)
        let yaml = dir.appendingPathComponent("options.yml")
        try Data("""
        name: from-file
        output: \(dir.appendingPathComponent("run").path)
        datasets:
          train: {root: \(data.path), degradation: "noise:15", patch_size: 8, batch_size: 2}
          val: {root: \(val.path)}
        network:
          model: {arch: restormer, dim: 4, num_blocks: [1, 1, 1, 1], num_refinement_blocks: 0, heads: [1, 1, 1, 1]}
        train: {iterations: 50, lr: 1e-3, log_every: 2}
        val: {every: 3, samples: 1}
        """.utf8).write(to: yaml)
        let r = try run(["train", "--config", yaml.path, "--iterations", "6", "--set", "train.log_every=3"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let run = dir.appendingPathComponent("run")
        let stored = try RunConfiguration.load(yaml: run.appendingPathComponent("options.yml"), mode: .train)
        XCTAssertEqual(stored.training.iterations, 6, "the flag overrides the file")
        XCTAssertEqual(stored.training.logEvery, 3, "--set overrides the file")
        XCTAssertEqual(stored.training.learningRate, 1e-3, "the file overrides the default")
        XCTAssertEqual(stored.trainData?.degradation, "noise:15")
        for file in ["best.safetensors", "training.png", "log.jsonl", "checkpoints/latest"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: run.appendingPathComponent(file).path), file)
        }
        let samples = try FileManager.default.contentsOfDirectory(atPath: run.appendingPathComponent("samples").path)
        XCTAssertEqual(samples.count, 2, "one sample at each of the two validations: \(samples)")
        let plot = try Image(contentsOf: run.appendingPathComponent("training.png"))
        XCTAssertGreaterThan(plot.width, 500)
    }

    // MARK: - Reference checks

    func testReferenceCheckPrintsEveryTensorAndFailsAboveTolerance() throws {
        guard let model = try referenceFile("golden/restormer_tiny.safetensors"),
              let loss = try referenceFile("golden/wave_kd.safetensors") else { return }
        let r = try run(["reference-check", model.path, loss.path])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("restormer_tiny.safetensors  output"), r.stdout)
        XCTAssertTrue(r.stdout.contains("wave_kd.safetensors  loss_wave"), r.stdout)
        XCTAssertFalse(r.stdout.contains("FAIL"))
        let strict = try run(["reference-check", model.path, "--tolerance", "1e-12"])
        XCTAssertEqual(strict.status, 4, strict.stdout)
        XCTAssertTrue(strict.stdout.contains("FAIL"))
        let plain = FileManager.default.temporaryDirectory.appendingPathComponent("plain-\(UUID().uuidString).safetensors")
        try SafeTensors.write(["w": Tensor(zeros: [2])], to: plain)
        defer { try? FileManager.default.removeItem(at: plain) }
        try assertBadInput(["reference-check", plain.path], mentions: [plain.path])
    }
}
