// `skd study`: a grid of distillation runs (methods and ablations) from one options file, on the same teacher,
// seed and batches, at equal steps or an equal budget; resumable run by run; a table (JSON, CSV, Markdown), a
// PSNR-versus-training-time figure and the `skd distill` command of every row. See Docs/distillation.md.

import ArgumentParser
import Foundation
import SwiftSKD

struct StudyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "study",
        abstract: "Run a grid of distillation runs (Table I methods, Table III ablations) from one options file and tabulate them.",
        discussion: """
            The file is a `skd distill` options file (the shared teacher, data, student, seed and budget) with a \
            `study:` section: `runs` (each a name, a method and `set` overrides such as distill.contrastive=false), \
            `test` (held-out images; default datasets.val), `output` (default runs/study), `teacher_cache_mb`, \
            `precompute_teacher`. Run it again after an interruption: finished runs are skipped, an interrupted one \
            resumes from its checkpoint. Writes <output>/study.json, study.csv, study.md and psnr-time.png.
            """)

    @Argument(help: ArgumentHelp("The study's options file (YAML).", valueName: "file"))
    var file: String

    @Option(help: ArgumentHelp("Bound of the teacher's forward-pass cache on disk in MB; batches beyond it are recomputed; 0 disables it [study.teacher_cache_mb]. (default: 2048)", valueName: "MB"))
    var teacherCacheMb: Int?

    @Flag(help: "Decode every training image once before the first run. (default: off)")
    var preflight = false

    @Option(help: ArgumentHelp("OpenBLAS and kernel threads; also $SKD_THREADS. (default: every core)", valueName: "n"))
    var threads: Int?

    @Option(help: .private)
    var stopAfter: Int?

    func run() throws {
        try reportingErrors {
            try RunSession.single.applyThreads(threads)
            let study = try StudyFile(URL(fileURLWithPath: file), teacherCacheMB: teacherCacheMb)
            let runner = StudyRunner(study: study)
            runner.report = { printError($0) }
            runner.preflight = preflight
            runner.stopAfter = stopAfter
            let table: StudyTable
            do { table = try runner.run() } catch let error as TrainingError {
                if case .interrupted = error {
                    throw failure("\(error.description.components(separatedBy: " (continue with").first ?? "interrupted"); run `skd study \(file)` again to resume the study", status: ExitStatus.interrupted)
                }
                throw error
            }
            print(table.markdown())
            print("files: " + runner.tableFiles.map(\.path).joined(separator: ", "))
        }
    }
}
