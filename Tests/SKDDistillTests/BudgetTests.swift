import Foundation
import SKDDistill
import SKDModels
import SKDNN
import SKDTensor
import SKDTestSupport
import XCTest

/// `--budget`: the grammar, image and wall-clock budgets in the trainer, the schedule over the budget, resume.
final class BudgetTests: XCTestCase {
    func testGrammar() throws {
        XCTAssertEqual(try TrainingBudget(parsing: "90s"), .seconds(90))
        XCTAssertEqual(try TrainingBudget(parsing: "30m"), .seconds(1800))
        XCTAssertEqual(try TrainingBudget(parsing: "2h"), .seconds(7200))
        XCTAssertEqual(try TrainingBudget(parsing: "1.5H"), .seconds(5400))
        XCTAssertEqual(try TrainingBudget(parsing: "45min"), .seconds(2700))
        XCTAssertEqual(try TrainingBudget(parsing: "50000img"), .images(50000))
        XCTAssertEqual(try TrainingBudget(parsing: "50kimg"), .images(50000))
        XCTAssertEqual(try TrainingBudget(parsing: "12images"), .images(12))
        for bad in ["", "abc", "0s", "-5m", "10", "10x", "1.5img", "s", "1e3s"] {
            XCTAssertThrowsError(try TrainingBudget(parsing: bad), bad) { error in
                XCTAssertTrue("\(error)".contains("'\(bad)'"), "the message names the value: \(error)")
            }
        }
        // The canonical text reads back.
        for budget in [TrainingBudget.seconds(90), .seconds(1.5), .images(7)] {
            XCTAssertEqual(try TrainingBudget(parsing: budget.description), budget)
        }
        XCTAssertEqual(TrainingBudget.images(10).iterations(batchSize: 4), 3)
        XCTAssertNil(TrainingBudget.seconds(10).iterations(batchSize: 4))
        XCTAssertEqual(TrainingBudget.cosineLR(base: 1e-3, etaMin: 1e-6, fraction: 0), 1e-3, accuracy: 1e-9)
        XCTAssertEqual(TrainingBudget.cosineLR(base: 1e-3, etaMin: 1e-6, fraction: 1), 1e-6, accuracy: 1e-9)
        XCTAssertEqual(TrainingBudget.cosineLR(base: 1e-3, etaMin: 0, fraction: 0.5), 5e-4, accuracy: 1e-9)
    }

    func testOptionsReadAndWriteTheBudget() throws {
        let c = try RunConfiguration.defaults(mode: .train, overrides: ["train.budget=30m"])
        XCTAssertEqual(c.training.budget, .seconds(1800))
        var withData = c
        withData.trainData = DatasetConfiguration(root: "data")
        let back = try RunConfiguration(json: withData.jsonString(), source: "test")
        XCTAssertEqual(back.training.budget, .seconds(1800))
        XCTAssertNil(try RunConfiguration(json: { var d = withData; d.training.budget = nil; return d.jsonString() }(), source: "test").training.budget)
        let images = try RunConfiguration.defaults(mode: .distill, overrides: ["train.budget=50kimg"])
        XCTAssertEqual(images.training.budget, .images(50000))
        XCTAssertThrowsError(try RunConfiguration.defaults(mode: .train, overrides: ["train.budget=3 weeks"])) { error in
            XCTAssertTrue("\(error)".contains("train.budget") && "\(error)".contains("'3 weeks'"), "\(error)")
        }
    }

    private func makeTrainer(budget: TrainingBudget?, directory: URL) -> Trainer {
        ParameterInit.seed(9)
        let student = TinyTappedModel(width: 3)
        let objective = DistillationObjective(teacher: nil, student: student, options: { var o = DistillationOptions(); o.method = .none; return o }())
        var training = TrainingOptions()
        training.iterations = 5
        training.budget = budget
        training.batchSize = 2
        training.patchSize = 8
        training.logEvery = 1
        training.validateEvery = 0
        training.checkpointEvery = 0
        training.learningRate = 1e-3
        training.minLearningRate = 1e-5
        let trainer = Trainer(objective: objective, training: SyntheticPairs(), validation: nil, options: training,
                              runDirectory: directory, configJSON: "{}")
        trainer.report = { _ in }
        return trainer
    }

    private func log(_ directory: URL) throws -> [[String: Any]] {
        let text = try String(contentsOf: directory.appendingPathComponent("log.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    }

    func testImageBudgetIsAStepCountWithTheCosineOverIt() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-budget-img")
        let summary = try makeTrainer(budget: .images(11), directory: dir).run()
        XCTAssertEqual(summary.iterations, 6, "ceil(11 / 2) steps, not train.iterations")
        let entries = try log(dir)
        XCTAssertEqual(entries.count, 6)
        let schedule = CosineAnnealingLR(baseLR: 1e-3, tMax: 6, etaMin: 1e-5)
        for (i, e) in entries.enumerated() {
            XCTAssertEqual(e["lr"] as! Double, Double(schedule.lr(at: i)), accuracy: 1e-9)
            XCTAssertEqual(e["budget"] as? String, "11img")
        }
        XCTAssertEqual(entries.last!["budget_used"] as! Double, 1, accuracy: 1e-12)
    }

    func testWallClockBudgetStopsAtTheBudgetWithTheRateAtItsMinimum() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-budget-time")
        let budget = 0.4
        let summary = try makeTrainer(budget: .seconds(budget), directory: dir).run()
        let entries = try log(dir)
        XCTAssertGreaterThan(summary.iterations, 5, "the budget, not train.iterations (5), ends the run")
        XCTAssertEqual(entries.count, summary.iterations)
        let spent = entries.map { $0["train_seconds"] as! Double }
        XCTAssertGreaterThanOrEqual(spent.last!, budget)
        XCTAssertLessThan(spent.dropLast().last!, budget, "it stops at the first step past the budget")
        // Each step's rate is the cosine at the fraction spent before it: non-increasing, from lr towards min_lr.
        let rates = entries.map { $0["lr"] as! Double }
        XCTAssertEqual(rates[0], 1e-3, accuracy: 1e-9)
        for i in 1..<rates.count { XCTAssertLessThanOrEqual(rates[i], rates[i - 1] + 1e-12) }
        XCTAssertEqual(rates.last!, Double(TrainingBudget.cosineLR(base: 1e-3, etaMin: 1e-5, fraction: spent.dropLast().last! / budget)), accuracy: 1e-9)
        XCTAssertGreaterThanOrEqual(entries.last!["budget_used"] as! Double, 1)
    }

    func testWallClockBudgetCarriesAcrossResume() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-budget-resume")
        let first = makeTrainer(budget: .seconds(0.4), directory: dir)
        first.stopAfter = 3
        XCTAssertThrowsError(try first.run())
        let latest = try XCTUnwrap(CheckpointStore(runDirectory: dir).latest())
        let state = try JSONDecoder().decode(CheckpointState.self, from: Data(contentsOf: latest.appendingPathComponent("state.json")))
        let before = try XCTUnwrap(state.seconds)
        XCTAssertGreaterThan(before, 0)
        let summary = try makeTrainer(budget: .seconds(0.4), directory: dir).run(resume: latest)
        let entries = try log(dir)
        XCTAssertEqual(entries.count, summary.iterations, "one log line per step across both processes")
        XCTAssertEqual(entries[3]["iter"] as? Int, 4)
        // The resumed process starts its budget from the stored seconds, not from zero.
        XCTAssertGreaterThan(entries[3]["train_seconds"] as! Double, before)
        XCTAssertGreaterThanOrEqual(entries.last!["train_seconds"] as! Double, 0.4)
    }
}

final class TrainingTimeTests: XCTestCase {
    func testCheckpointStateAndLogGiveTheTrainingTime() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-training-time")
        ParameterInit.seed(10)
        let objective = DistillationObjective(teacher: nil, student: TinyTappedModel(width: 3),
                                              options: { var o = DistillationOptions(); o.method = .none; return o }())
        var training = TrainingOptions()
        training.iterations = 4; training.batchSize = 2; training.patchSize = 8
        training.logEvery = 1; training.validateEvery = 0; training.checkpointEvery = 0
        let trainer = Trainer(objective: objective, training: SyntheticPairs(), validation: nil, options: training,
                              runDirectory: dir, configJSON: "{}")
        trainer.report = { _ in }
        let summary = try trainer.run()
        XCTAssertGreaterThan(summary.trainingSeconds, 0)
        // A checkpoint's state.json stores it.
        let fromState = try XCTUnwrap(TrainingTime.seconds(forWeights: summary.checkpoint.appendingPathComponent("model.safetensors")))
        XCTAssertEqual(fromState, summary.trainingSeconds, accuracy: 1e-9)
        // A file in the run folder reads the log: its last `seconds`.
        let fromLog = try XCTUnwrap(TrainingTime.seconds(forWeights: dir.appendingPathComponent("best.safetensors")))
        XCTAssertEqual(fromLog, summary.trainingSeconds, accuracy: 1e-6)
    }

    func testResumedLogsSumTheirProcesses() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-training-time-log")
        let lines = [#"{"iter": 1, "seconds": 1.0}"#, #"{"iter": 2, "seconds": 2.5}"#, #"{"iter": 2, "val_psnr": 20.0}"#,
                     #"{"iter": 3, "seconds": 0.7}"#, #"{"iter": 4, "seconds": 1.5}"#]
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: dir.appendingPathComponent("log.jsonl"))
        XCTAssertEqual(try XCTUnwrap(TrainingTime.seconds(forWeights: dir.appendingPathComponent("best.safetensors"))), 4.0, accuracy: 1e-12)
        XCTAssertNil(TrainingTime.seconds(forWeights: dir.appendingPathComponent("none/x.safetensors")))
        XCTAssertNil(TrainingTime.seconds(forWeights: nil))
    }
}
