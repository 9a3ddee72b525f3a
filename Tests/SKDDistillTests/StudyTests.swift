import Foundation
import SKDDistill
import SKDImage
import SKDModels
import SKDNN
import SKDTensor
import SKDTestSupport
import XCTest

/// `skd study`: the options file, the teacher cache's equivalence, resume run by run, the table files.
final class StudyTests: XCTestCase {
    private func temporaryDirectory() throws -> URL { try makeTemporaryDirectory(prefix: "skd-study") }

    private func photo(_ width: Int, _ height: Int, seed: Int) -> Image {
        var bytes = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height { for x in 0..<width { for c in 0..<3 {
            bytes[(y * width + x) * 3 + c] = UInt8((x * 7 + y * 13 + c * 50 + seed * 31 + (x * y) % 17) % 256)
        } } }
        return Image(width: width, height: height, channels: 3, bytes: bytes)
    }

    private func cleanFolder(_ root: URL, count: Int, side: Int, seed: Int = 0) throws -> URL {
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        for i in 0..<count { try photo(side, side, seed: seed + i).write(to: root.appendingPathComponent("img\(i).png")) }
        return root
    }

    /// A tiny Restormer teacher saved as a weights file naming its architecture.
    private func teacherFile(in dir: URL) throws -> URL {
        let spec = try ModelSpec(dictionary: tinyRestormer)
        ParameterInit.seed(11)
        let teacher = spec.makeModel()
        let file = dir.appendingPathComponent("teacher.safetensors")
        try SafeTensors.write(teacher.stateDict(), metadata: ["config": spec.jsonString()], to: file)
        return file
    }

    /// A study file over tiny data with `study` as its study section (YAML text, indented by two spaces).
    private func studyFile(_ dir: URL, study: String, teacher: URL? = nil, withTest: Bool = true) throws -> URL {
        let train = try cleanFolder(dir.appendingPathComponent("train"), count: 2, side: 24)
        let test = try cleanFolder(dir.appendingPathComponent("test"), count: 1, side: 16, seed: 7)
        let text = """
            seed: 3
            datasets:
              train: {root: \(train.path), degradation: "noise:25", patch_size: 16, batch_size: 2}
            network:
              student: {arch: restormer, dim: 4, num_blocks: [1, 1, 1, 1], num_refinement_blocks: 0, heads: [1, 1, 1, 1]}
              teacher_weights: \(teacher?.path ?? "/nonexistent/teacher.safetensors")
            train: {iterations: 3, lr: 1.0e-3, log_every: 1, checkpoint_every: 1}
            val: {every: 0}
            study:
              output: \(dir.appendingPathComponent("study").path)
            \(withTest ? "  test: {root: \(test.path), degradation: \"noise:25\"}" : "")
            \(study)
            """
        let url = dir.appendingPathComponent("study.yml")
        try Data(text.utf8).write(to: url)
        return url
    }

    // MARK: - Options

    func testStudyOptionsParseAndReproduceAsDistillCommands() throws {
        let dir = try temporaryDirectory()
        let url = try studyFile(dir, study: """
              teacher_cache_mb: 5
              runs:
                - {name: none, method: none}
                - {name: skd-no-cl, method: skd, set: ["distill.contrastive=false", "distill.alpha2=0.5"]}
            """)
        let study = try StudyFile(url)
        XCTAssertEqual(study.spec.runs, [StudyRunSpec(name: "none", method: .none),
                                         StudyRunSpec(name: "skd-no-cl", method: .skd, set: ["distill.contrastive=false", "distill.alpha2=0.5"])])
        XCTAssertEqual(study.spec.teacherCacheMB, 5)
        XCTAssertEqual(try StudyFile(url, teacherCacheMB: 0).spec.teacherCacheMB, 0)
        let c = try study.configuration(of: 1)
        XCTAssertEqual(c.distillation.method, .skd)
        XCTAssertFalse(c.distillation.contrastive)
        XCTAssertEqual(c.distillation.alpha2, 0.5)
        XCTAssertEqual(c.seed, 3)
        XCTAssertEqual(c.runDirectory.path, study.runDirectory("skd-no-cl").path)
        // The printed command resolves to the same options as the study's run: shared.yml, then the flags, then --set.
        try FileManager.default.createDirectory(at: study.directory, withIntermediateDirectories: true)
        try Data(try study.sharedYAML().utf8).write(to: study.sharedOptionsFile)
        XCTAssertEqual(study.command(of: 1), "skd distill --config \(study.sharedOptionsFile.path) --method skd --name skd-no-cl --output \(study.runDirectory("skd-no-cl").path) --set distill.contrastive=false --set distill.alpha2=0.5")
        var tree = try RunConfiguration.optionsTree(yaml: study.sharedOptionsFile)
        for (key, value) in [("name", "skd-no-cl"), ("output", study.runDirectory("skd-no-cl").path), ("distill.method", "skd")] {
            try RunConfiguration.assign(value, at: key, in: &tree)
        }
        try RunConfiguration.apply(overrides: ["distill.contrastive=false", "distill.alpha2=0.5"], to: &tree)
        XCTAssertEqual(try RunConfiguration(dictionary: tree, source: "command", mode: .distill).withAbsolutePaths().jsonString(), c.jsonString())
    }

    func testStudyOptionErrorsNameTheFileAndKey() throws {
        let dir = try temporaryDirectory()
        func error(_ study: String, withTest: Bool = true) throws -> String {
            let url = try studyFile(dir, study: study, withTest: withTest)
            let m = message { try StudyFile(url) }
            XCTAssertTrue(m.hasPrefix(url.path + ":"), "names the file: \(m)")
            return m
        }
        XCTAssertTrue(try error("  runs:\n    - {name: a, method: none}\n    - {name: b, methd: skd}").contains("study.runs[1].methd: unknown key"))
        XCTAssertTrue(try error("  cache_mb: 3\n  runs:\n    - {name: a, method: none}").contains("study.cache_mb: unknown key"))
        XCTAssertTrue(try error("  runs:\n    - {name: a, method: skd2}").contains("study.runs[0].method: unknown method 'skd2'; known: skd, wave"))
        XCTAssertTrue(try error("  runs:\n    - {name: a}").contains("study.runs[0].method: missing"))
        XCTAssertTrue(try error("  test: {root: x, noise: 3}\n  runs:\n    - {name: a, method: none}", withTest: false).contains("study.test.noise: unknown key"))
        XCTAssertTrue(try error("  teacher_cache_mb: many\n  runs:\n    - {name: a, method: none}").contains("study.teacher_cache_mb"))
        XCTAssertTrue(try error("  runs:\n    - {name: a, method: none}\n    - {name: a, method: skd}").contains("study.runs[1].name: 'a' is used twice"))
        XCTAssertTrue(try error("  runs:\n    - {name: a/b, method: none}").contains("study.runs[0].name"))
        XCTAssertTrue(try error("  runs:\n    - {name: a, method: none, set: [seed=4]}").contains("study.runs[0].set: 'seed=4'"))
        XCTAssertTrue(try error("  runs:\n    - {name: a, method: none, set: [distill.alpha9=4]}").contains("alpha9"))
        XCTAssertTrue(try error("  runs: []").contains("study.runs: empty"))
        // An unknown key of the shared sections is named by the options reader.
        let url = dir.appendingPathComponent("bad.yml")
        try Data("train: {iterationz: 3}\nstudy:\n  runs:\n    - {name: a, method: none}\n".utf8).write(to: url)
        let m = message { try StudyFile(url) }
        XCTAssertTrue(m.contains(url.path) && m.contains("train.iterationz"), m)
    }

    // MARK: - Teacher cache

    /// Trains a tiny Restormer student for 3 steps with `method`, with or without a cache; returns the logged loss
    /// lines and the final weights.
    private func train(method: DistillationMethod, cache: TeacherForwardCache?, directory: URL) throws -> ([String], [String: Tensor]) {
        let spec = try ModelSpec(dictionary: tinyRestormer)
        ParameterInit.seed(11)
        let teacher = spec.makeModel()
        ParameterInit.seed(5)
        let student = spec.makeModel()
        var options = DistillationOptions()
        options.method = method
        let objective = DistillationObjective(teacher: teacher, student: student, options: options)
        objective.teacherCache = cache
        var training = TrainingOptions()
        training.iterations = 3
        training.batchSize = 2
        training.patchSize = 16
        training.logEvery = 1
        training.validateEvery = 0
        training.checkpointEvery = 0
        training.learningRate = 1e-3
        let trainer = Trainer(objective: objective, training: SyntheticPairs(), validation: nil, options: training,
                              runDirectory: directory, configJSON: "{}")
        trainer.report = { _ in }
        _ = try trainer.run()
        let lines = try String(contentsOf: directory.appendingPathComponent("log.jsonl"), encoding: .utf8).split(separator: "\n").map { line -> String in
            var object = try! JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            object["seconds"] = nil
            return String(decoding: try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
        }
        return (lines, student.stateDict())
    }

    func testCachedTeacherGivesTheSameLossesAndWeights() throws {
        let dir = try temporaryDirectory()
        let spec = try ModelSpec(dictionary: tinyRestormer)
        let taps = TeacherForwardCache.taps(for: spec.makeModel())
        for method in [DistillationMethod.skd, .dckd, .fitnet, .outputKD] {
            let (plainLog, plainWeights) = try train(method: method, cache: nil, directory: dir.appendingPathComponent("\(method)-plain"))
            let cacheDir = dir.appendingPathComponent("\(method)-cache")
            let filling = try TeacherForwardCache(directory: cacheDir, limitMB: 100, taps: taps, teacher: "tiny")
            let (fillLog, fillWeights) = try train(method: method, cache: filling, directory: dir.appendingPathComponent("\(method)-fill"))
            XCTAssertEqual(filling.misses, 3, "\(method): the first run computes every batch")
            let reading = try TeacherForwardCache(directory: cacheDir, limitMB: 100, taps: taps, teacher: "tiny")
            let (readLog, readWeights) = try train(method: method, cache: reading, directory: dir.appendingPathComponent("\(method)-read"))
            XCTAssertEqual(reading.hits, 3, "\(method): the second run reads every batch")
            XCTAssertEqual(reading.misses, 0, "\(method)")
            XCTAssertEqual(fillLog, plainLog, "\(method): losses")
            XCTAssertEqual(readLog, plainLog, "\(method): losses")
            for (name, value) in plainWeights {
                XCTAssertEqual(relativeError(fillWeights[name]!, value), 0, "\(method) \(name)")
                XCTAssertEqual(relativeError(readWeights[name]!, value), 0, "\(method) \(name)")
            }
        }
    }

    func testCacheIsBoundedAndKeyedByTeacher() throws {
        let dir = try temporaryDirectory()
        let spec = try ModelSpec(dictionary: tinyRestormer)
        ParameterInit.seed(11)
        let teacher = spec.makeModel()
        let taps = TeacherForwardCache.taps(for: teacher)
        let input = Tensor(shape: [1, 3, 16, 16], values: (0..<768).map { Float($0 % 13) / 13 - 0.5 })
        let other = Tensor(shape: [1, 3, 16, 16], values: (0..<768).map { Float($0 % 11) / 11 - 0.5 })
        // A bound smaller than one entry: nothing stored, every lookup recomputed (and still correct).
        let tiny = try TeacherForwardCache(directory: dir.appendingPathComponent("c"), limitMB: 0, taps: taps, teacher: "a")
        let direct = noGrad { teacher.forward(input, taps: nil) }
        XCTAssertEqual(relativeError(tiny.forward(teacher, input: input, needing: []).output, direct), 0)
        XCTAssertEqual(tiny.overBudget, 1)
        XCTAssertNil(tiny.lookup(input, needing: []))
        // Within the bound: stored, then read; another input misses.
        let cache = try TeacherForwardCache(directory: dir.appendingPathComponent("c"), limitMB: 10, taps: taps, teacher: "a")
        _ = cache.forward(teacher, input: input, needing: [])
        let hit = try XCTUnwrap(cache.lookup(input, needing: Set(taps)))
        XCTAssertEqual(relativeError(hit.output, direct), 0)
        XCTAssertNil(cache.lookup(other, needing: []))
        XCTAssertNil(cache.lookup(input, needing: ["no_such_tap"]), "an entry without a needed tap is a miss")
        // Another teacher empties the folder.
        let renamed = try TeacherForwardCache(directory: dir.appendingPathComponent("c"), limitMB: 10, taps: taps, teacher: "b")
        XCTAssertEqual(renamed.bytesUsed, 0)
        XCTAssertNil(renamed.lookup(input, needing: []))
    }

    // MARK: - Running a study

    func testStudyResumesRunByRunAndWritesTheTable() throws {
        let dir = try temporaryDirectory()
        let teacher = try teacherFile(in: dir)
        let url = try studyFile(dir, study: """
              runs:
                - {name: plain, method: none}
                - {name: okd, method: output-kd}
                - {name: skd-gk, method: skd, set: ["distill.contrastive=false", "distill.channel_branch=false"]}
            """, teacher: teacher)
        let study = try StudyFile(url)
        var lines: [String] = []
        let interrupted = StudyRunner(study: study)
        interrupted.report = { lines.append($0) }
        interrupted.stopAfter = 2
        XCTAssertThrowsError(try interrupted.run()) { error in
            guard case .interrupted(let iteration, _)? = error as? TrainingError else { return XCTFail("\(error)") }
            XCTAssertEqual(iteration, 2)
        }
        XCTAssertNotNil(CheckpointStore(runDirectory: study.runDirectory("plain")).latest())

        lines = []
        let runner = StudyRunner(study: study)
        runner.report = { lines.append($0) }
        let table = try runner.run()
        XCTAssertTrue(lines.contains { $0.contains("plain") && $0.contains("resuming") }, "\(lines)")
        XCTAssertEqual(table.rows.map(\.name), ["plain", "okd", "skd-gk"])
        XCTAssertEqual(table.rows.map(\.steps), [3, 3, 3])
        XCTAssertEqual(table.rows.map(\.images), [6, 6, 6])
        XCTAssertEqual(table.references.map(\.name), ["input (degraded)", "teacher"])
        XCTAssertTrue(table.rows.allSatisfy { $0.psnr.isFinite && $0.trainingSeconds > 0 && $0.testImages == 1 })
        // The teacher's pass was precomputed: the distilling runs read every batch from the cache.
        XCTAssertNotNil(table.teacherPassSeconds)
        XCTAssertEqual(table.rows[1].cacheHits, 3)
        XCTAssertEqual(table.rows[1].cacheMisses, 0)
        XCTAssertEqual(table.rows[2].cacheHits, 3)
        XCTAssertEqual(table.rows[0].cacheHits + table.rows[0].cacheMisses, 0, "method none never asks the teacher")
        XCTAssertEqual(table.rows[2].command, study.command(of: 2))
        XCTAssertEqual(table.rows[0].load?.count, 2, "the load average around each run (Linux)")

        // The table files.
        for file in runner.tableFiles { XCTAssertTrue(FileManager.default.fileExists(atPath: file.path), file.path) }
        let json = try JSONDecoder().decode(StudyTable.self, from: Data(contentsOf: runner.tableFiles[0]))
        XCTAssertEqual(json, table)
        let csv = try String(contentsOf: runner.tableFiles[1], encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(csv.count, 4)
        XCTAssertTrue(csv[0].hasPrefix("name,method,overrides,steps,images,training_seconds,psnr,ssim"))
        XCTAssertTrue(csv[3].hasPrefix("skd-gk,skd,distill.contrastive=false distill.channel_branch=false,3,6,"), String(csv[3]))
        let markdown = try String(contentsOf: runner.tableFiles[2], encoding: .utf8)
        XCTAssertTrue(markdown.contains("| okd | output-kd | 3 | 6 |"), markdown)
        XCTAssertTrue(markdown.contains(study.command(of: 0)))
        let png = try Image(contentsOf: runner.tableFiles[3])
        XCTAssertEqual(png.width, 900)

        // Run again: every run is finished and skipped, the same table comes back.
        lines = []
        let again = StudyRunner(study: study)
        again.report = { lines.append($0) }
        XCTAssertEqual(try again.run(), table)
        XCTAssertEqual(lines.filter { $0.contains("skipped") }.count, 3, "\(lines)")

        // A finished run whose options changed is not silently reused.
        let changed = try studyFile(dir, study: """
              runs:
                - {name: plain, method: none, set: ["train.lr=0.5"]}
            """, teacher: teacher)
        let m = message { try StudyRunner(study: try StudyFile(changed)).run() }
        XCTAssertTrue(m.contains("other options") && m.contains("plain"), m)
    }

    func testValidationCurvePlacesEachValidationAtItsTrainingTime() throws {
        let dir = try temporaryDirectory()
        let log = dir.appendingPathComponent("log.jsonl")
        try Data("""
            {"iter": 1, "seconds": 1.0, "rec": 0.5}
            {"iter": 5, "seconds": 5.0, "rec": 0.4}
            {"iter": 4, "val_psnr": 20.0, "val_ssim": 0.5}
            {"iter": 5, "val_psnr": 21.0, "val_ssim": 0.6}
            {"iter": 9, "seconds": 10.0, "rec": 0.3}
            {"iter": 9, "val_psnr": 22.0, "val_ssim": 0.7}

            """.utf8).write(to: log)
        let curve = StudyRunner.validationCurve(log: log)
        XCTAssertEqual(curve.map(\.x), [4, 5, 10])
        XCTAssertEqual(curve.map(\.y), [20, 21, 22])
    }
}
