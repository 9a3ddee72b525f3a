// The DocC tutorials (Sources/SwiftSKD/SwiftSKD.docc) are compiled and run, so they cannot rot: the snippets in
// Snippets/ are executables built by `swift build` and run here on tiny random networks and generated images, and
// the article whose code lives in a test file must show exactly that file's code.

import Foundation
import SKDTestSupport
import SwiftSKD
import XCTest

final class DocumentationTests: XCTestCase {
    /// The package root, from this file's path (Tests/SKDCommandTests/DocumentationTests.swift).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let catalog = root.appendingPathComponent("Sources/SwiftSKD/SwiftSKD.docc")

    /// Runs the snippet executable `name` (built next to `skd`) to completion.
    private func runSnippet(_ name: String, _ arguments: [String]) throws -> CommandResult {
        guard let skd = CommandLineTests.executable else { throw XCTSkip("no skd executable next to the tests") }
        let url = skd.deletingLastPathComponent().appendingPathComponent(name)
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            XCTFail("the snippet \(name) is not built next to skd (\(url.path)); `swift build --build-tests` builds Snippets/")
            throw XCTSkip("no \(name) executable")
        }
        let process = Process()
        process.executableURL = url
        process.arguments = arguments
        process.standardOutput = Pipe()
        process.standardError = Pipe()
        try process.run()
        return SKDProcess.finish(process)
    }

    private var tinySpec: ModelSpec { get throws { try ModelSpec(dictionary: Fixtures.tinyRestormer) } }

    func testRestoreImageSnippetRestoresAPNG() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-doc-restore")
        let weights = try Fixtures.tinyWeights(dir.appendingPathComponent("tiny.safetensors"))
        let input = dir.appendingPathComponent("noisy.png"), output = dir.appendingPathComponent("restored.png")
        let photo = Fixtures.photo(21, 14)
        try photo.write(to: input)
        let spec = try tinySpec
        let r = try runSnippet("RestoreImage", [weights.path, spec.jsonString(), input.path, output.path])
        XCTAssertEqual(r.status, 0, r.stderr)

        // The same restoration in this process.
        let model = spec.makeModel()
        try model.load(SafeTensors.read(weights).tensors)
        model.eval()
        let expected = Image(tensor: Inference.restore(model, photo.tensor(range: .zeroToOne)), range: .zeroToOne)
        let written = try Image(contentsOf: output, channels: .rgb)
        XCTAssertEqual([written.width, written.height], [21, 14])
        let worst = zip(written.bytes, expected.bytes).map { abs(Int($0) - Int($1)) }.max() ?? 255
        XCTAssertLessThanOrEqual(worst, 1, "the snippet's PNG differs from the in-process restoration")

        // Bad input: one line naming the file, no trap.
        let missing = dir.appendingPathComponent("missing.safetensors")
        let bad = try runSnippet("RestoreImage", [missing.path, "restormer", input.path, output.path])
        XCTAssertEqual(bad.status, 1)
        XCTAssertEqual(bad.stderr.split(separator: "\n").count, 1, bad.stderr)
        XCTAssertTrue(bad.stderr.contains(missing.path), bad.stderr)
    }

    func testDistillStudentSnippetTrainsAndScores() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-doc-distill")
        let teacher = try Fixtures.tinyWeights(dir.appendingPathComponent("teacher.safetensors"))
        let images = try Fixtures.cleanFolder(dir.appendingPathComponent("photos"), count: 3, width: 24, height: 24)
        let run = dir.appendingPathComponent("run")
        let spec = try tinySpec.jsonString()
        let r = try runSnippet("DistillStudent", [teacher.path, spec, spec, images.path, run.path, "3", "16"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let line = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let numbers = line.split(separator: " ").compactMap { Double($0) }
        XCTAssertTrue(line.hasPrefix("student PSNR") && numbers.count == 2 && numbers.allSatisfy(\.isFinite), line)

        // Three steps logged, read back through TrainingLog; the final checkpoint is there.
        let entries = try TrainingLog.entries(at: run.appendingPathComponent("log.jsonl"))
        XCTAssertEqual(entries.compactMap { $0["iter"] }.max(), 3)
        XCTAssertNotNil(entries.last?["total"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.appendingPathComponent("checkpoints").path))

        // The teacher's score is the shared evaluation loop's, computed here independently.
        let model = try tinySpec.makeModel()
        try model.load(SafeTensors.read(teacher).tensors)
        let data = try CleanDataset(folder: images, degradation: GaussianNoise(sigma: 25))
        let scores = try XCTUnwrap(RestorationEvaluation.run([model], on: data))
        XCTAssertEqual(numbers[1], scores.models[0].psnr, accuracy: 0.01)
    }

    /// The code blocks of AddingAnOp.md, in order, are the `// tutorial: begin … end` regions of the tested file.
    func testAddingAnOpArticleShowsTheTestedCode() throws {
        let article = try String(contentsOf: Self.catalog.appendingPathComponent("AddingAnOp.md"), encoding: .utf8)
        let source = try String(contentsOf: Self.root.appendingPathComponent("Tests/SKDTensorTests/CustomOpTutorialTests.swift"), encoding: .utf8)
        let blocks = Self.regions(of: article, from: "```swift\n", to: "```\n")
        let regions = Self.regions(of: source, from: "// tutorial: begin\n", to: "// tutorial: end\n")
        XCTAssertEqual(regions.count, 2)
        XCTAssertEqual(blocks, regions, "AddingAnOp.md and CustomOpTutorialTests.swift differ: copy the tested code into the article")
    }

    /// Every `@Snippet` of the catalog names a file in Snippets/, and every snippet is shown by an article.
    func testEverySnippetIsInTheCatalogAndExists() throws {
        let fm = FileManager.default
        var named: Set<String> = []
        for file in try fm.contentsOfDirectory(atPath: Self.catalog.path) where file.hasSuffix(".md") {
            let text = try String(contentsOf: Self.catalog.appendingPathComponent(file), encoding: .utf8)
            for path in Self.regions(of: text, from: "@Snippet(path: \"SwiftSKD/Snippets/", to: "\")") { named.insert(path) }
        }
        let files = Set(try fm.contentsOfDirectory(atPath: Self.root.appendingPathComponent("Snippets").path)
            .filter { $0.hasSuffix(".swift") }.map { String($0.dropLast(6)) })
        XCTAssertEqual(named, files)
        XCTAssertEqual(named, ["RestoreImage", "DistillStudent"])
    }

    /// The texts between each `start` and the next `end`, in order.
    static func regions(of text: String, from start: String, to end: String) -> [String] {
        var out: [String] = [], rest = text[...]
        while let a = rest.range(of: start), let b = rest[a.upperBound...].range(of: end) {
            out.append(String(rest[a.upperBound..<b.lowerBound]))
            rest = rest[b.upperBound...]
        }
        return out
    }
}
