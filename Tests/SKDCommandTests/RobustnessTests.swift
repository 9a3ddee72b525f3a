// Issue 14, through the binary as a user meets it: nothing a user types crashes `skd`, every bad value is a
// one-line error (status 2) before any work, nothing it writes destroys data.

import Foundation
import SKDTestSupport
import SwiftSKD
import XCTest

final class ArchitectureValidationCommandTests: XCTestCase {
    /// Values the constructors cannot take, from `--set`: one line naming the value, no run folder.
    func testImpossibleArchitecturesFromSetAreOneLineErrors() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-arch")
        let data = try Fixtures.cleanFolder(dir.appendingPathComponent("data"), count: 2)
        let run = dir.appendingPathComponent("run")
        func train(_ model: String, _ sets: [String]) -> [String] {
            ["train", "--model", model, "--train-data", data.path, "--train-degradation", "noise:5", "--patch-size", "8",
             "--iterations", "2", "--output", run.path] + sets.flatMap { ["--set", $0] }
        }
        let cases: [(String, [String], [String])] = [
            ("restormer", ["network.model.dim=9"], ["dim", "9"]),
            ("restormer", ["network.model.dim=0"], ["dim", "0"]),
            ("restormer", ["network.model.dim=-8"], ["dim", "-8"]),
            ("restormer", ["network.model.dim=4", "network.model.heads=[3,3,3,3]"], ["3 heads", "4 channels"]),
            ("restormer", ["network.model.num_blocks=[1,1,1]"], ["num_blocks", "4"]),
            ("restormer", ["network.model.ffn_expansion_factor=0"], ["ffn_expansion_factor"]),
            ("restormer", ["network.model.dim=100000"], ["parameters", "T", "limit"]),
            ("restormer", ["network.model.dims=4"], ["dims", "unknown"]),
            ("restormer", ["network.model.dim=abc"], ["dim", "integer"]),
            ("uformer-s", ["network.model.embed_dim=0"], ["embed_dim", "0"]),
            ("uformer-s", ["network.model.win_size=0"], ["win_size", "0"]),
            ("uformer-s", ["network.model.num_heads=[1,2,4,8,16,16,8,4]"], ["num_heads", "9"]),
            ("uformer-s", ["network.model.token_mlp=conv"], ["token_mlp", "conv"]),
            ("drsformer-s", ["network.model.heads=[1,2,4,7]"], ["heads", "7"]),
            ("drsformer-s", ["network.model.LayerNorm_type=Bogus"], ["LayerNorm_type", "Bogus"]),
        ]
        for (model, sets, mentions) in cases {
            try assertOneLineError(train(model, sets), mentions: mentions, noFolder: run)
        }
    }

    /// An options file with a typo inside `network.model`, or an impossible value, is refused naming the file.
    func testOptionsFileNetworkKeysAreChecked() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-arch")
        let data = try Fixtures.cleanFolder(dir.appendingPathComponent("data"), count: 2)
        let yaml = dir.appendingPathComponent("options.yml")
        try Data("""
        datasets:
          train: {root: \(data.path), degradation: "noise:5", patch_size: 8}
        network:
          model: {arch: restormer, dim: 8, num_block: [1, 1, 1, 1]}
        """.utf8).write(to: yaml)
        try assertOneLineError(["train", "--config", yaml.path, "--output", dir.appendingPathComponent("run").path],
                               mentions: [yaml.path, "num_block"], noFolder: dir.appendingPathComponent("run"))
    }

    /// A weights file whose `config` metadata describes an impossible network is refused by every command.
    func testWeightsConfigMetadataIsValidated() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-arch")
        let bad = dir.appendingPathComponent("bad.safetensors")
        try SafeTensors.write(["w": Tensor(zeros: [1])], metadata: ["config": #"{"arch": "restormer", "dim": 9}"#], to: bad)
        let huge = dir.appendingPathComponent("huge.safetensors")
        try SafeTensors.write(["w": Tensor(zeros: [1])], metadata: ["config": #"{"arch": "uformer", "embed_dim": 100000}"#], to: huge)
        let image = dir.appendingPathComponent("x.png")
        try Fixtures.photo(16, 16).write(to: image)
        try assertOneLineError(["info", bad.path], mentions: [bad.path, "dim"])
        try assertOneLineError(["info", huge.path], mentions: [huge.path, "parameters"])
        try assertOneLineError(["restore", image.path, "--model", bad.path, "--output", dir.appendingPathComponent("out").path],
                               mentions: [bad.path, "dim"], noFolder: dir.appendingPathComponent("out"))
        let data = try Fixtures.cleanFolder(dir.appendingPathComponent("data"), count: 1, width: 16, height: 16)
        try assertOneLineError(["eval", "--data", data.path, "--degradation", "noise:5", "--model", bad.path], mentions: [bad.path, "dim"])
    }

    /// GMACs at any size: counted at the padded size inference runs, never a trap.
    func testMACsAtAnySize() throws {
        let a = try SKDProcess.run(["info", "restormer", "--height", "321", "--width", "481"])
        XCTAssertEqual(a.status, 0, a.stderr)
        let b = try SKDProcess.run(["info", "restormer", "--height", "328", "--width", "488"])
        XCTAssertEqual(b.status, 0, b.stderr)
        func gmacs(_ text: String) -> String? { text.split(separator: "\n").last?.split(separator: " ").map(String.init).dropLast().last }
        XCTAssertEqual(gmacs(a.stdout), gmacs(b.stdout), "321×481 is counted at the padded 328×488: \(a.stdout) \(b.stdout)")
        let d = try SKDProcess.run(["info", "drsformer-s", "uformer-s", "--height", "100", "--width", "100"])
        XCTAssertEqual(d.status, 0, d.stderr)
        XCTAssertTrue(d.stdout.contains("GMACs@100x100"), d.stdout)
        try assertOneLineError(["info", "restormer", "--height", "0"], mentions: ["--height", "0"])
        try assertOneLineError(["info", "restormer", "--width", "10000000000"], mentions: ["--width"])
    }
}

final class NumberValidationCommandTests: XCTestCase {
    func testEvalNumbersAreCheckedBeforeAnyWork() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-numbers")
        let data = try Fixtures.cleanFolder(dir.appendingPathComponent("data"), count: 2, width: 20, height: 20)
        let weights = try Fixtures.tinyWeights(dir.appendingPathComponent("tiny.safetensors"))
        let base = ["eval", "--data", data.path, "--degradation", "noise:5", "--model", weights.path]
        try assertOneLineError(base + ["--tile", "16"], mentions: ["--tile 16", "--tile-overlap 32"])
        try assertOneLineError(base + ["--tile", "0"], mentions: ["--tile 0"])
        try assertOneLineError(base + ["--tile-overlap=-1"], mentions: ["--tile-overlap -1"])
        try assertOneLineError(base + ["--macs-size", "0"], mentions: ["--macs-size 0"])
        try assertOneLineError(base + ["--macs-size", "99999999"], mentions: ["--macs-size 99999999"])
        try assertOneLineError(base + ["--border=-2"], mentions: ["-2"])
        // A size the count has to pad (100 is no multiple of 8) works, and the table is printed.
        let json = dir.appendingPathComponent("eval.json")
        let r = try SKDProcess.run(base + ["--macs-size", "100", "--tile", "16", "--tile-overlap", "4", "--json", json.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("GMACs@100"), r.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: json.path))
        // Eval's messages speak of test data, not validation data.
        let tiny = try Fixtures.cleanFolder(dir.appendingPathComponent("tiny"), count: 1, width: 6, height: 6)
        let small = try SKDProcess.run(["eval", "--data", tiny.path, "--degradation", "noise:5", "--model", weights.path])
        XCTAssertEqual(small.status, 2)
        XCTAssertFalse(small.stderr.contains("validation"), small.stderr)
        XCTAssertTrue(small.stderr.contains("test data"), small.stderr)
    }

    func testTrainingNumbersAreCheckedBeforeTheRunFolder() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-numbers")
        let data = try Fixtures.cleanFolder(dir.appendingPathComponent("data"), count: 2)
        let run = dir.appendingPathComponent("run")
        for (flag, value) in [("--weight-decay", "-1"), ("--weight-decay", "nan"), ("--lr", "inf"), ("--workers", "100000")] {
            try assertOneLineError(Fixtures.tinyRun(data: data, output: run, iterations: 3, extra: ["\(flag)=\(value)"]), mentions: [value], noFolder: run)
        }
        try assertOneLineError(Fixtures.tinyRun(data: data, output: run, iterations: 3, extra: ["--set", "distill.alpha2=-1"]),
                               mentions: [], noFolder: run)
    }

    /// A hand-edited `state.json` with an iteration beyond the run or below 0 is refused naming the file.
    func testCheckpointStateNumbersAreChecked() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-numbers")
        let data = try Fixtures.cleanFolder(dir.appendingPathComponent("data"), count: 2)
        let run = dir.appendingPathComponent("run")
        let first = try SKDProcess.run(Fixtures.tinyRun(data: data, output: run, iterations: 6, extra: ["--stop-after", "3"]))
        XCTAssertEqual(first.status, 130, first.stderr)
        let checkpoint = try XCTUnwrap(CheckpointStore(runDirectory: run).latest())
        let stateURL = checkpoint.appendingPathComponent("state.json")
        let original = try String(contentsOf: stateURL, encoding: .utf8)
        for bad in [5000, -3] {
            let edited = original.replacingOccurrences(of: "\"iteration\" : 3", with: "\"iteration\" : \(bad)")
            XCTAssertNotEqual(edited, original, "the state file should hold the iteration")
            try Data(edited.utf8).write(to: stateURL)
            try assertOneLineError(["train", "--resume", run.path], mentions: [stateURL.path, "iteration \(bad)"])
        }
        try Data(original.utf8).write(to: stateURL)
        let resumed = try SKDProcess.run(["train", "--resume", run.path])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
    }

    /// `skd plot` on a log line holding a value no run writes is an error naming the line.
    func testPlotRejectsImplausibleLogValues() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-numbers")
        let log = dir.appendingPathComponent("log.jsonl")
        for (line, key) in [(#"{"iter": 1e20, "total": 0.5}"#, "iter"), (#"{"iter": 3, "total": 1e300}"#, "total"),
                            (#"{"iter": -4, "total": 0.5}"#, "iter"), (#"{"iter": 2.5, "total": 0.5}"#, "iter")] {
            try Data((#"{"iter": 1, "total": 0.7}"# + "\n" + line + "\n").utf8).write(to: log)
            try assertOneLineError(["plot", dir.path], mentions: [log.path, "line 2", key])
        }
        try Data((#"{"iter": 1, "total": 0.7}"# + "\n" + #"{"iter": 2, "total": 0.5, "val_psnr": 20}"# + "\n").utf8).write(to: log)
        let ok = try SKDProcess.run(["plot", dir.path])
        XCTAssertEqual(ok.status, 0, ok.stderr)
    }
}

final class UsageErrorCommandTests: XCTestCase {
    /// ArgumentParser's usage errors exit 2 like every bad input, in one line.
    func testUsageErrorsExitTwo() throws {
        try assertOneLineError(["train", "--bogus"], mentions: ["--bogus"])
        try assertOneLineError(["eval", "--tile", "abc", "--data", "x", "--model", "y"], mentions: ["abc"])
        try assertOneLineError(["restore", "x.png"], mentions: ["--model"])
        try assertOneLineError(["frobnicate"], mentions: ["frobnicate"])
        XCTAssertEqual(try SKDProcess.run(["--help"]).status, 0)
    }

    /// Help states each default once.
    func testHelpDoesNotRepeatDefaults() throws {
        for command in ["train", "distill", "eval", "restore", "info", "plot", "reference-check", "demo", "study"] {
            let help = try SKDProcess.run([command, "--help"]).stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
            XCTAssertFalse(help.contains("minusOneToOne"), "\(command): \(help)")
            XCTAssertNil(help.range(of: #"\(default: [^()]*\) \(default:"#, options: .regularExpression), "\(command) repeats a default: \(help)")
        }
    }

    /// Errors on output paths name the path in one line, not a Foundation error dump.
    func testFileErrorsAreOneLineNamingThePath() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-usage")
        let image = dir.appendingPathComponent("x.png")
        try Fixtures.photo(16, 16).write(to: image)
        let weights = try Fixtures.tinyWeights(dir.appendingPathComponent("tiny.safetensors"))
        let blocker = dir.appendingPathComponent("blocker")
        try Data("not a folder".utf8).write(to: blocker)
        try assertOneLineError(["restore", image.path, "--model", weights.path, "--output", blocker.path], mentions: [blocker.path])
        try assertOneLineError(["restore", image.path, "--model", weights.path, "--output", blocker.appendingPathComponent("sub").path],
                               mentions: [blocker.path])
        let data = try Fixtures.cleanFolder(dir.appendingPathComponent("data"), count: 1, width: 16, height: 16)
        try assertOneLineError(["eval", "--data", data.path, "--degradation", "noise:5", "--model", weights.path,
                                "--json", blocker.appendingPathComponent("e.json").path], mentions: [blocker.path])
        try assertOneLineError(Fixtures.tinyRun(data: data, output: blocker, iterations: 2), mentions: [blocker.path, "not a folder"])
        try assertOneLineError(Fixtures.tinyRun(data: data, output: blocker.appendingPathComponent("run"), iterations: 2), mentions: [blocker.path])
        try Data((#"{"iter": 1, "total": 0.7}"# + "\n").utf8).write(to: dir.appendingPathComponent("log.jsonl"))
        try assertOneLineError(["plot", dir.path, "--output", blocker.appendingPathComponent("p.png").path], mentions: [blocker.path])
    }
}

final class RestoreSafetyCommandTests: XCTestCase {
    private func files(_ folder: URL) throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() }

    /// Restoring into the inputs' own folder refuses instead of overwriting them; unrelated files there are kept
    /// unless --overwrite; inputs sharing a stem get distinct names.
    func testRestoreNeverOverwritesInputsOrUnrelatedFiles() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-restore")
        let weights = try Fixtures.tinyWeights(dir.appendingPathComponent("tiny.safetensors"))
        let photos = dir.appendingPathComponent("photos")
        try FileManager.default.createDirectory(at: photos, withIntermediateDirectories: true)
        let pic = photos.appendingPathComponent("pic.png")
        try Fixtures.photo(16, 16, seed: 1).write(to: pic)
        let before = try Data(contentsOf: pic)
        try assertOneLineError(["restore", pic.path, "--model", weights.path, "--output", photos.path], mentions: [pic.path, "input"])
        try assertOneLineError(["restore", pic.path, "--model", weights.path, "--output", photos.path, "--overwrite"], mentions: [pic.path, "input"])
        XCTAssertEqual(try Data(contentsOf: pic), before, "the input is untouched")

        // pic2.jpg next to an unrelated pic2.png in the output folder.
        let jpg = dir.appendingPathComponent("pic2.jpg")
        try Fixtures.photo(16, 16, seed: 2).write(to: jpg)
        let out = dir.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let unrelated = out.appendingPathComponent("pic2.png")
        try Fixtures.photo(16, 16, seed: 9).write(to: unrelated)
        let kept = try Data(contentsOf: unrelated)
        try assertOneLineError(["restore", jpg.path, "--model", weights.path, "--output", out.path], mentions: [unrelated.path, "--overwrite"])
        XCTAssertEqual(try Data(contentsOf: unrelated), kept)
        let replaced = try SKDProcess.run(["restore", jpg.path, "--model", weights.path, "--output", out.path, "--overwrite"])
        XCTAssertEqual(replaced.status, 0, replaced.stderr)
        XCTAssertNotEqual(try Data(contentsOf: unrelated), kept, "--overwrite replaces it")

        // Two inputs of one stem: both restored, under distinct names.
        let png = dir.appendingPathComponent("pic2.png")
        try Fixtures.photo(16, 16, seed: 3).write(to: png)
        let both = dir.appendingPathComponent("both")
        let r = try SKDProcess.run(["restore", jpg.path, png.path, "--model", weights.path, "--output", both.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try files(both), ["pic2_jpg.png", "pic2_png.png"])
        XCTAssertNotEqual(try Data(contentsOf: both.appendingPathComponent("pic2_jpg.png")), try Data(contentsOf: both.appendingPathComponent("pic2_png.png")))
        // Running it again refuses: the files are from an earlier run.
        try assertOneLineError(["restore", jpg.path, png.path, "--model", weights.path, "--output", both.path], mentions: ["already exists"])
    }

    /// An image whose whole-image inference would exceed --max-memory is restored in tiles automatically, with a
    /// note, and gives what the same explicit tiling gives.
    func testLargeImagesAreTiledWithinTheMemoryBudget() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-restore")
        let weights = try Fixtures.tinyWeights(dir.appendingPathComponent("tiny.safetensors"))
        let image = dir.appendingPathComponent("big.png")
        try Fixtures.photo(72, 64, seed: 4).write(to: image)
        let auto = dir.appendingPathComponent("auto")
        let a = try SKDProcess.run(["restore", image.path, "--model", weights.path, "--output", auto.path, "--max-memory", "1M", "--tile-overlap", "4"])
        XCTAssertEqual(a.status, 0, a.stderr)
        let note = try XCTUnwrap(a.stderr.split(separator: "\n").first { $0.contains("tiles") }, a.stderr)
        let side = try XCTUnwrap(note.components(separatedBy: "-pixel tiles").first?.split(separator: " ").last.flatMap { Int($0) }, String(note))
        XCTAssertLessThan(side, 64)
        let explicit = dir.appendingPathComponent("explicit")
        let e = try SKDProcess.run(["restore", image.path, "--model", weights.path, "--output", explicit.path, "--tile", "\(side)", "--tile-overlap", "4"])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertEqual(try Data(contentsOf: auto.appendingPathComponent("big.png")), try Data(contentsOf: explicit.appendingPathComponent("big.png")))
        // Plenty of memory: whole-image, no note.
        let whole = try SKDProcess.run(["restore", image.path, "--model", weights.path, "--output", dir.appendingPathComponent("whole").path])
        XCTAssertEqual(whole.status, 0, whole.stderr)
        XCTAssertFalse(whole.stderr.contains("tiles"), whole.stderr)
        // A budget nothing fits in, or nonsense, is an error before any work.
        try assertOneLineError(["restore", image.path, "--model", weights.path, "--output", dir.appendingPathComponent("x").path, "--max-memory", "2K"],
                               mentions: [image.path, "--max-memory"], noFolder: dir.appendingPathComponent("x"))
        try assertOneLineError(["restore", image.path, "--model", weights.path, "--output", dir.appendingPathComponent("x").path, "--max-memory", "lots"],
                               mentions: ["lots"], noFolder: dir.appendingPathComponent("x"))
    }
}

final class WeightsIntegrityCommandTests: XCTestCase {
    /// NaN weights are refused at load time by restore and eval, naming the tensor.
    func testNonFiniteWeightsAreRefused() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-weights")
        let weights = try Fixtures.tinyWeights(dir.appendingPathComponent("nan.safetensors")) { state in
            let t = state["output.weight"]!
            t.pointer[1] = .nan
        }
        let image = dir.appendingPathComponent("x.png")
        try Fixtures.photo(16, 16).write(to: image)
        let out = dir.appendingPathComponent("out")
        try assertOneLineError(["restore", image.path, "--model", weights.path, "--output", out.path],
                               mentions: [weights.path, "output.weight", "NaN"], noFolder: out)
        let data = try Fixtures.cleanFolder(dir.appendingPathComponent("data"), count: 1, width: 16, height: 16)
        try assertOneLineError(["eval", "--data", data.path, "--degradation", "noise:5", "--model", weights.path],
                               mentions: [weights.path, "output.weight"])
    }

    /// --preset that contradicts the architecture the weights name is an error, not silently ignored.
    func testConflictingPresetIsAnError() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-weights")
        let weights = try Fixtures.tinyWeights(dir.appendingPathComponent("tiny.safetensors"))
        let image = dir.appendingPathComponent("x.png")
        try Fixtures.photo(16, 16).write(to: image)
        try assertOneLineError(["restore", image.path, "--model", weights.path, "--preset", "uformer-s", "--output", dir.appendingPathComponent("o").path],
                               mentions: [weights.path, "uformer"])
        try assertOneLineError(["restore", image.path, "--model", weights.path, "--preset", "restormer-s", "--output", dir.appendingPathComponent("o").path],
                               mentions: [weights.path, "--preset"])
    }
}

final class LogIntegrityCommandTests: XCTestCase {
    /// The log's lines without the timing field, in order.
    private func lines(_ log: URL) throws -> [String] {
        try String(contentsOf: log, encoding: .utf8).split(separator: "\n").map { line in
            var object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], String(line))
            object.removeValue(forKey: "seconds")
            return String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
        }
    }

    /// kill -9 at random points of a short run, resumed each time: the whole log equals an uninterrupted run's
    /// (same lines, same values, no duplicates), and `seconds` grows across the resumes.
    func testKilledAndResumedRunLogsLikeAnUninterruptedOne() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-log")
        let data = try Fixtures.cleanFolder(dir.appendingPathComponent("data"), count: 3)
        let val = try Fixtures.cleanFolder(dir.appendingPathComponent("val"), count: 1, width: 16, height: 16)
        let iterations = 80
        func options(_ output: URL) -> [String] {
            Fixtures.tinyRun(data: data, output: output, iterations: iterations,
                             extra: ["--checkpoint-every", "5", "--val-data", val.path, "--val-every", "10", "--samples", "0"])
        }
        let straight = dir.appendingPathComponent("straight")
        let a = try SKDProcess.run(options(straight))
        XCTAssertEqual(a.status, 0, a.stderr)
        let expected = try lines(straight.appendingPathComponent("log.jsonl"))
        XCTAssertEqual(expected.count, iterations + iterations / 10)

        let killed = dir.appendingPathComponent("killed")
        let log = killed.appendingPathComponent("log.jsonl")
        var kills: [Int] = []
        var finished = false
        for attempt in 0..<8 {
            let resume = CheckpointStore(runDirectory: killed).latest() != nil
            let process = try SKDProcess.start(resume ? ["train", "--resume", killed.path] : options(killed))
            if attempt < 4 {
                // Kill once the log has grown by a random number of lines.
                let have = (try? String(contentsOf: log, encoding: .utf8))?.split(separator: "\n").count ?? 0
                let target = have + Int.random(in: 2...12)
                let deadline = Date().addingTimeInterval(60)
                while process.isRunning && Date() < deadline {
                    if let text = try? String(contentsOf: log, encoding: .utf8), text.split(separator: "\n").count >= target { break }
                    usleep(500)
                }
                if process.isRunning {
                    kill(process.processIdentifier, SIGKILL)
                    kills.append(target)
                }
            }
            let r = SKDProcess.finish(process)
            if r.status == 0 { finished = true; break }
            XCTAssertEqual(r.terminationReason, .uncaughtSignal, "only the kills may stop it: \(r.stderr)")
        }
        XCTAssertTrue(finished, "the run completes after its kills (\(kills))")
        XCTAssertFalse(kills.isEmpty, "at least one kill must land before the end for the test to mean anything")
        let got = try lines(log)
        XCTAssertEqual(got, expected, "kills at log lines \(kills)")
        let seconds = try String(contentsOf: log, encoding: .utf8).split(separator: "\n").compactMap { line -> Double? in
            ((try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any])?["seconds"].flatMap { ($0 as? NSNumber)?.doubleValue }
        }
        XCTAssertEqual(seconds, seconds.sorted(), "seconds is cumulative across resumes")
        // The same best weights (the files differ only in the run folder named in their config).
        let bestKilled = try SafeTensors.read(killed.appendingPathComponent("best.safetensors")).tensors
        let bestStraight = try SafeTensors.read(straight.appendingPathComponent("best.safetensors")).tensors
        XCTAssertEqual(Set(bestKilled.keys), Set(bestStraight.keys))
        for (name, tensor) in bestStraight {
            XCTAssertEqual(bestKilled[name]?.values, tensor.values, "\(name), kills at \(kills)")
        }
    }
}

final class OptionsFileCommandTests: XCTestCase {
    /// A key given twice in an options file is an error naming the file and the key, not "last wins".
    func testDuplicateYAMLKeysAreErrors() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-options")
        let yaml = dir.appendingPathComponent("twice.yml")
        try Data("train:\n  iterations: 5\n  lr: 1e-3\n  iterations: 50\n".utf8).write(to: yaml)
        try assertOneLineError(["train", "--config", yaml.path], mentions: [yaml.path, "train.iterations", "twice"])
        let nested = dir.appendingPathComponent("nested.yml")
        try Data("network:\n  model: {arch: restormer, dim: 8, dim: 16}\n".utf8).write(to: nested)
        try assertOneLineError(["train", "--config", nested.path], mentions: [nested.path, "network.model.dim"])
    }

    /// `--set key=null`, as the guide's files write it, means the option's default.
    func testSetNullMeansTheDefault() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-options")
        let pairs = dir.appendingPathComponent("pairs")
        for sub in ["input", "target"] { _ = try Fixtures.cleanFolder(pairs.appendingPathComponent(sub), count: 2) }
        let run = dir.appendingPathComponent("run")
        var arguments = Fixtures.tinyRun(data: pairs, output: run, iterations: 2)
        arguments += ["--set", "datasets.train.degradation=null"]
        let r = try SKDProcess.run(arguments)
        XCTAssertEqual(r.status, 0, r.stderr)
        let stored = try RunConfiguration.load(yaml: run.appendingPathComponent("options.yml"), mode: .train)
        XCTAssertNil(stored.trainData?.degradation, "null leaves the folder paired")
    }
}

final class SelfContainedRunCommandTests: XCTestCase {
    /// A run started with relative data paths resumes on the same data from another folder, and refuses to
    /// resume once the data moved.
    func testResumeFromAnotherFolderUsesTheRunsOwnData() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-selfcontained")
        let home = dir.appendingPathComponent("home"), elsewhere = dir.appendingPathComponent("elsewhere")
        _ = try Fixtures.cleanFolder(home.appendingPathComponent("data"), count: 4)
        _ = try Fixtures.cleanFolder(elsewhere.appendingPathComponent("data"), count: 1)
        let run = dir.appendingPathComponent("run")
        var arguments = Fixtures.tinyRun(data: URL(fileURLWithPath: "data"), output: run, iterations: 6, extra: ["--stop-after", "3"])
        arguments[arguments.firstIndex(of: URL(fileURLWithPath: "data").path)!] = "data"
        let first = try SKDProcess.run(arguments, in: home)
        XCTAssertEqual(first.status, 130, first.stderr)
        XCTAssertTrue(first.stderr.contains("4 training pairs"), first.stderr)
        let options = try String(contentsOf: run.appendingPathComponent("options.yml"), encoding: .utf8)
        XCTAssertTrue(options.contains(home.appendingPathComponent("data").standardizedFileURL.path), options)

        let resumed = try SKDProcess.run(["train", "--resume", run.path, "--stop-after", "4"], in: elsewhere)
        XCTAssertTrue(resumed.stderr.contains("4 training pairs"), "resumed on the run's own data: \(resumed.stderr)")

        try FileManager.default.moveItem(at: home.appendingPathComponent("data"), to: home.appendingPathComponent("moved"))
        try assertOneLineError(["train", "--resume", run.path], mentions: [home.appendingPathComponent("data").standardizedFileURL.path, "moved"],
                               in: elsewhere)
    }
}

final class PreflightCommandTests: XCTestCase {
    /// Truncates the PNG at `url` after its header: the header check passes, decoding fails.
    private func truncate(_ url: URL) throws {
        let data = try Data(contentsOf: url)
        try data.prefix(data.count * 3 / 5).write(to: url)
    }

    func testPreflightNamesEveryUnreadableImageBeforeAnyWork() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-preflight")
        let data = try Fixtures.cleanFolder(dir.appendingPathComponent("data"), count: 5)
        for name in ["p1.png", "p3.png"] { try truncate(data.appendingPathComponent(name)) }
        let run = dir.appendingPathComponent("run")
        let r = try SKDProcess.run(Fixtures.tinyRun(data: data, output: run, iterations: 4))
        XCTAssertEqual(r.status, 2, r.stderr)
        let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("skd: error:") }
        XCTAssertEqual(errors.count, 1, r.stderr)
        for name in ["p1.png", "p3.png"] { XCTAssertTrue(errors[0].contains(data.appendingPathComponent(name).path), r.stderr) }
        XCTAssertTrue(r.stderr.contains("preflight: decoded 5/5 training images"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.path), "no work may start")

        // Skipping the pass: the unreadable images cost their batches, with warnings, never the run.
        let skipped = try SKDProcess.run(Fixtures.tinyRun(data: data, output: run, iterations: 12, extra: ["--skip-preflight"]))
        XCTAssertEqual(skipped.status, 0, skipped.stderr)
        XCTAssertTrue(skipped.stderr.contains("skd: warning: skipped a batch"), skipped.stderr)
        XCTAssertTrue(skipped.stderr.contains("skipped for unreadable images"), skipped.stderr)
        let log = try String(contentsOf: run.appendingPathComponent("log.jsonl"), encoding: .utf8)
        XCTAssertEqual(log.split(separator: "\n").count, 12, "every iteration trained")

        // Eval skips and counts them too.
        let weights = try Fixtures.tinyWeights(dir.appendingPathComponent("tiny.safetensors"))
        let json = dir.appendingPathComponent("eval.json")
        let e = try SKDProcess.run(["eval", "--data", data.path, "--degradation", "noise:5", "--model", weights.path, "--json", json.path])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertTrue(e.stderr.contains("2 of 5 images skipped"), e.stderr)
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [[String: Any]])
        XCTAssertEqual((rows[1]["images"] as? NSNumber)?.intValue, 3)
    }

    /// A batch whose tensors cannot fit is refused up front with the estimate, before any crop is gathered.
    func testOversizedBatchIsRefusedUpFront() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-preflight")
        let data = try Fixtures.cleanFolder(dir.appendingPathComponent("data"), count: 2, width: 64, height: 64)
        let run = dir.appendingPathComponent("run")
        var arguments = Fixtures.tinyRun(data: data, output: run, iterations: 2)
        arguments[arguments.firstIndex(of: "--batch-size")! + 1] = "100000"
        arguments[arguments.firstIndex(of: "--patch-size")! + 1] = "64"
        let began = Date()
        try assertOneLineError(arguments, mentions: ["batch_size 100000", "GB"], noFolder: run)
        XCTAssertLessThan(Date().timeIntervalSince(began), 30)
    }

    /// The checkpoint due at a validation's iteration exists while that validation runs.
    func testCheckpointComesBeforeTheValidationOfItsIteration() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-preflight")
        let data = try Fixtures.cleanFolder(dir.appendingPathComponent("data"), count: 2)
        let val = dir.appendingPathComponent("val")
        try FileManager.default.createDirectory(at: val, withIntermediateDirectories: true)
        try Fixtures.photo(16, 16, seed: 1).write(to: val.appendingPathComponent("a.png"))
        try Fixtures.photo(640, 640, seed: 2).write(to: val.appendingPathComponent("b.png"))
        let run = dir.appendingPathComponent("run")
        let process = try SKDProcess.start(Fixtures.tinyRun(data: data, output: run, iterations: 12,
                                                            extra: ["--checkpoint-every", "6", "--val-data", val.path, "--val-every", "6", "--samples", "1"]))
        let sample = run.appendingPathComponent("samples/iter-00000006_a.png")
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: sample.path) && process.isRunning && Date() < deadline { usleep(200) }
        let latest = CheckpointStore(runDirectory: run).latest()
        let r = SKDProcess.finish(process)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(latest?.lastPathComponent, "iter-00000006", "the checkpoint of iteration 6 is written before its validation")
    }
}

final class InterruptCommandTests: XCTestCase {
    /// A second SIGINT while the first waits for a long validation exits at once, leaving no partial file; the
    /// run then resumes to its end.
    func testSecondInterruptExitsAtOnceWritingNothingPartial() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-interrupt")
        let data = try Fixtures.cleanFolder(dir.appendingPathComponent("data"), count: 2)
        let val = dir.appendingPathComponent("val")
        try FileManager.default.createDirectory(at: val, withIntermediateDirectories: true)
        for i in 0..<3 { try Fixtures.photo(768, 768, seed: i).write(to: val.appendingPathComponent("v\(i).png")) }
        let run = dir.appendingPathComponent("run")
        let process = try SKDProcess.start(Fixtures.tinyRun(data: data, output: run, iterations: 2,
                                                            extra: ["--val-data", val.path, "--val-every", "2", "--samples", "3"]))
        // Validation at iteration 2 (the last) has begun once its checkpoint is there.
        let deadline = Date().addingTimeInterval(120)
        while CheckpointStore(runDirectory: run).latest() == nil && process.isRunning && Date() < deadline { usleep(1000) }
        XCTAssertTrue(process.isRunning, "the validation should still be running")
        usleep(100_000)
        kill(process.processIdentifier, SIGINT)
        usleep(100_000)
        let second = Date()
        kill(process.processIdentifier, SIGINT)
        let r = SKDProcess.finish(process)
        XCTAssertLessThan(Date().timeIntervalSince(second), 3, "the second SIGINT exits at once")
        XCTAssertEqual(r.status, 130, r.stderr)
        XCTAssertTrue(r.stderr.contains("interrupted again"), r.stderr)
        // Nothing partial: no temporary files, every log line whole.
        let everything = FileManager.default.enumerator(atPath: run.path)!.compactMap { $0 as? String }
        XCTAssertTrue(everything.filter { $0.hasSuffix(".tmp") || $0.contains(".tmp/") }.isEmpty, "\(everything)")
        for line in try String(contentsOf: run.appendingPathComponent("log.jsonl"), encoding: .utf8).split(separator: "\n") {
            XCTAssertNotNil(try? JSONSerialization.jsonObject(with: Data(line.utf8)), String(line))
        }
        let resumed = try SKDProcess.run(["train", "--resume", run.path])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
    }
}
