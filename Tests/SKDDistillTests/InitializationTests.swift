import Foundation
import SKDDistill
import SKDImage
import SKDModels
import SKDNN
import SKDTensor
import SKDTestSupport
import XCTest

/// `--init-weights` (strict / non-strict) and `--init-from-teacher`.
final class InitializationTests: XCTestCase {
    private let teacherNetwork: [String: Any] = ["arch": "restormer", "dim": 8, "num_blocks": [2, 2, 2, 2], "num_refinement_blocks": 2,
                                                 "heads": [1, 2, 2, 4]]
    private let studentNetwork: [String: Any] = ["arch": "restormer", "dim": 4, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 1,
                                                 "heads": [1, 2, 2, 4]]

    func testSlicesHaveTheStudentsShapesAndTheTeachersLeadingValues() throws {
        ParameterInit.seed(1)
        let teacher = try ModelSpec(dictionary: teacherNetwork).makeModel()
        let student = try ModelSpec(dictionary: studentNetwork).makeModel()
        let sliced = try StudentInitialization.slicedFromTeacher(teacher.stateDict(), student: student.stateDict(), source: "teacher")
        let state = student.stateDict()
        XCTAssertEqual(Set(sliced.keys), Set(state.keys))
        for (name, t) in sliced { XCTAssertEqual(t.shape, state[name]!.shape, name) }
        // One slice's values, by index: qkv of the first level-1 block, [3·4, 4, 1, 1] from [3·8, 8, 1, 1].
        let key = "encoder_level1.0.attn.qkv.weight"
        let full = teacher.stateDict()[key]!, cut = sliced[key]!
        XCTAssertEqual(full.shape, [24, 8, 1, 1])
        XCTAssertEqual(cut.shape, [12, 4, 1, 1])
        for o in 0..<12 { for i in 0..<4 { XCTAssertEqual(cut.pointer[o * 4 + i], full.pointer[o * 8 + i]) } }
        // The second block of a level is not in the student: nothing of encoder_level1.1 is used.
        XCTAssertFalse(sliced.keys.contains { $0.hasPrefix("encoder_level1.1.") })
        // The sliced tensors load strictly and the student then runs.
        try student.load(sliced, strict: true)
        var rng = SKDRandom(seed: 2)
        let y = noGrad { student(Tensor.uniform([1, 3, 16, 16], low: -1, high: 1, using: &rng)) }
        XCTAssertEqual(y.shape, [1, 3, 16, 16])
    }

    func testAStudentWiderThanTheTeacherIsNamed() throws {
        let narrow = try ModelSpec(dictionary: studentNetwork).makeModel(), wide = try ModelSpec(dictionary: teacherNetwork).makeModel()
        XCTAssertThrowsError(try StudentInitialization.slicedFromTeacher(narrow.stateDict(), student: wide.stateDict(), source: "t.safetensors")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("t.safetensors") && (text.contains("smaller") || text.contains("no tensor")), text)
        }
    }

    func testStrictAndNonStrictLoadingNameTheKeys() throws {
        ParameterInit.seed(3)
        let source = try ModelSpec(dictionary: studentNetwork).makeModel()
        let target = try ModelSpec(dictionary: studentNetwork).makeModel()
        var tensors = source.stateDict().mapValues { $0.copy() }
        tensors.removeValue(forKey: "output.weight")
        tensors["extra.weight"] = Tensor(zeros: [2])
        XCTAssertThrowsError(try StudentInitialization.load(tensors, into: target, strict: true, source: "w.safetensors")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("w.safetensors") && text.contains("1 missing (output.weight)") && text.contains("1 unexpected (extra.weight)"), text)
        }
        // Strict failure loads nothing.
        XCTAssertNotEqual(target.stateDict()["patch_embed.proj.weight"]!.pointer[0], source.stateDict()["patch_embed.proj.weight"]!.pointer[0])
        let before = target.stateDict()["output.weight"]!.copy()
        let report = try StudentInitialization.load(tensors, into: target, strict: false, source: "w.safetensors")
        XCTAssertTrue(report.contains("missing (output.weight)") && report.contains("unexpected (extra.weight)"), report)
        XCTAssertEqual(target.stateDict()["patch_embed.proj.weight"]!.pointer[0], source.stateDict()["patch_embed.proj.weight"]!.pointer[0])
        XCTAssertEqual(target.stateDict()["output.weight"]!.relativeError(to: before), 0, "a missing tensor keeps its value")
    }

    /// Through the options: a teacher file on disk, `network.init_from_teacher`, `network.init_weights`.
    func testOptionsInitialiseThePreparedStudent() throws {
        let dir = try makeTemporaryDirectory(prefix: "skd-init")
        let data = dir.appendingPathComponent("clean")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        for i in 0..<2 {
            let bytes = (0..<(40 * 40 * 3)).map { UInt8(($0 * (i + 3)) % 251) }
            try Image(width: 40, height: 40, channels: 3, bytes: bytes).write(to: data.appendingPathComponent("\(i).png"))
        }
        ParameterInit.seed(4)
        let teacher = try ModelSpec(dictionary: teacherNetwork).makeModel()
        let teacherFile = dir.appendingPathComponent("teacher.safetensors")
        let config = String(decoding: try JSONSerialization.data(withJSONObject: try ModelSpec(dictionary: teacherNetwork).dictionary()), as: UTF8.self)
        try SafeTensors.write(teacher.stateDict(), metadata: ["config": config], to: teacherFile)
        let base = ["datasets.train.root=\(data.path)", "datasets.train.degradation=noise:25", "datasets.train.patch_size=16",
                    "network.teacher_weights=\(teacherFile.path)", "distill.method=none",
                    "network.student={arch: restormer, dim: 4, num_blocks: [1, 1, 1, 1], num_refinement_blocks: 1, heads: [1, 2, 2, 4]}"]

        var c = try RunConfiguration.defaults(mode: .distill, overrides: base + ["network.init_from_teacher=true", "output=\(dir.appendingPathComponent("a").path)"])
        let prepared = try c.prepare()
        XCTAssertTrue(prepared.initialization?.contains("sliced from the teacher") == true)
        let key = "latent.0.attn.qkv.weight"
        let expected = StudentInitialization.slice(teacher.stateDict()[key]!, to: prepared.student.stateDict()[key]!.shape)
        XCTAssertEqual(prepared.student.stateDict()[key]!.relativeError(to: expected), 0)

        // init_weights: the student of a strict file loads; a teacher-sized file fails strictly, naming the shapes.
        let studentFile = dir.appendingPathComponent("student.safetensors")
        try SafeTensors.write(prepared.student.stateDict(), to: studentFile)
        c = try RunConfiguration.defaults(mode: .distill, overrides: base + ["network.init_weights=\(studentFile.path)", "output=\(dir.appendingPathComponent("b").path)"])
        let fromFile = try c.prepare()
        XCTAssertEqual(fromFile.student.stateDict()[key]!.relativeError(to: expected), 0)
        XCTAssertTrue(fromFile.initialization?.contains("loaded") == true)
        c = try RunConfiguration.defaults(mode: .distill, overrides: base + ["network.init_weights=\(teacherFile.path)", "output=\(dir.appendingPathComponent("c").path)"])
        XCTAssertThrowsError(try c.prepare()) { error in
            XCTAssertTrue("\(error)".contains("strict initial weights do not fit") && "\(error)".contains("with another shape"), "\(error)")
        }
        // Both at once is refused.
        c = try RunConfiguration.defaults(mode: .distill, overrides: base + ["network.init_weights=\(studentFile.path)", "network.init_from_teacher=true"])
        XCTAssertThrowsError(try c.prepare()) { error in XCTAssertTrue("\(error)".contains("not both"), "\(error)") }
    }
}
