// `mpirun -np 2 skd distill ...` against one process (Docs/distributed.md): the same losses and weights, resume
// with the same or another number of ranks, a signal on one rank, a killed rank, one-line layout errors.
// Open MPI's mpirun must be installed (`make deps`); under CI=true its absence fails these tests.

import Foundation
import SKDTestSupport
import SwiftSKD
import XCTest

final class DistributedCommandTests: XCTestCase {
    /// `mpirun` on the PATH (or Debian's /usr/bin/mpirun).
    static let mpirun: URL? = {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init) + ["/usr/bin"]
        return path.map { URL(fileURLWithPath: $0).appendingPathComponent("mpirun") }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }()

    private func tools() throws -> (skd: URL, mpirun: URL) {
        guard let skd = CommandLineTests.executable else {
            XCTFail("the skd executable is not next to the tests; build it with `swift build --build-tests`")
            throw XCTSkip("no skd executable")
        }
        guard let mpirun = DistributedCommandTests.mpirun else {
            if ProcessInfo.processInfo.environment["CI"] == "true" {
                XCTFail("mpirun is not installed: `make deps` installs openmpi-bin and libopenmpi-dev")
            }
            throw XCTSkip("mpirun is not installed (make deps)")
        }
        return (skd, mpirun)
    }

    /// Runs as root (CI) are allowed; no single-copy shared memory (not permitted in containers); idle ranks yield
    /// the core (the CI machine has two, shared).
    private var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        env["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none"
        env["OMPI_MCA_mpi_yield_when_idle"] = "1"
        env.removeValue(forKey: "SKD_THREADS")
        return env
    }

    private func start(_ executable: URL, _ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = environment
        process.standardOutput = Pipe()
        process.standardError = Pipe()
        try process.run()
        return process
    }

    /// Waits for `process`, reading its output; `nil` status if it outlived `timeout` seconds (then it is killed).
    private func finish(_ process: Process, timeout: TimeInterval = 120) -> (status: Int32?, stdout: String, stderr: String, seconds: Double) {
        final class Box: @unchecked Sendable { var data = Data() }
        let out = Box(), err = Box()
        let group = DispatchGroup()
        for (pipe, box) in [(process.standardOutput as! Pipe, out), (process.standardError as! Pipe, err)] {
            group.enter()
            DispatchQueue.global().async { box.data = pipe.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        }
        let began = Date()
        var status: Int32? = nil
        while Date().timeIntervalSince(began) < timeout {
            if !process.isRunning { status = process.terminationStatus; break }
            usleep(20_000)
        }
        if status == nil { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        let seconds = Date().timeIntervalSince(began)
        group.wait()
        return (status, String(decoding: out.data, as: UTF8.self), String(decoding: err.data, as: UTF8.self), seconds)
    }

    /// `skd arguments` in one process.
    private func skd(_ arguments: [String]) throws -> (status: Int32?, stdout: String, stderr: String, seconds: Double) {
        finish(try start(try tools().skd, arguments))
    }

    /// `mpirun -np ranks --oversubscribe [-q] skd arguments`.
    private func mpi(_ ranks: Int, _ arguments: [String], quiet: Bool = true) throws -> Process {
        let (skd, mpirun) = try tools()
        return try start(mpirun, ["-np", "\(ranks)", "--oversubscribe"] + (quiet ? ["-q"] : []) + [skd.path] + arguments)
    }

    private func photo(_ size: Int, seed: Int) -> Image {
        var bytes = [UInt8](repeating: 0, count: size * size * 3)
        for y in 0..<size { for x in 0..<size { for c in 0..<3 {
            bytes[(y * size + x) * 3 + c] = UInt8((x * 9 + y * 5 + c * 70 + seed * 23 + (x * y) % 13) % 256)
        } } }
        return Image(width: size, height: size, channels: 3, bytes: bytes)
    }

    private let tinyStudent = ["--student", "restormer", "--set", "network.student.dim=4", "--set", "network.student.num_blocks=[1,1,1,1]",
                               "--set", "network.student.num_refinement_blocks=0", "--set", "network.student.heads=[1,1,1,1]"]

    /// A data folder and a tiny teacher (another seed and width than the student, so that the feature and
    /// contrastive terms are far from zero).
    private func fixture() throws -> (dir: URL, data: URL, teacher: URL) {
        let dir = try makeTemporaryDirectory(prefix: "skd-mpi")
        let data = dir.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        for i in 0..<5 { try photo(24, seed: i).write(to: data.appendingPathComponent("p\(i).png")) }
        let teacher = dir.appendingPathComponent("teacher")
        let t = try skd(["train", "--model", "restormer", "--set", "network.model.dim=6", "--set", "network.model.num_blocks=[1,1,1,1]",
                         "--set", "network.model.num_refinement_blocks=0", "--set", "network.model.heads=[1,1,1,1]", "--seed", "11",
                         "--train-data", data.path, "--train-degradation", "noise:25", "--patch-size", "8", "--batch-size", "2",
                         "--iterations", "3", "--val-every", "0", "--output", teacher.path])
        XCTAssertEqual(t.status, 0, t.stderr)
        return (dir, data, teacher)
    }

    private func distill(_ f: (dir: URL, data: URL, teacher: URL), method: String, output: URL, batch: Int = 4, iterations: Int = 6) -> [String] {
        ["distill", "--teacher", f.teacher.path] + tinyStudent +
            ["--method", method, "--train-data", f.data.path, "--train-degradation", "noise:25", "--patch-size", "16",
             "--batch-size", "\(batch)", "--iterations", "\(iterations)", "--log-every", "1", "--val-every", "0",
             "--checkpoint-every", "0", "--output", output.path]
    }

    private func losses(_ run: URL) throws -> [Int: [String: Double]] {
        var out: [Int: [String: Double]] = [:]
        for line in try String(contentsOf: run.appendingPathComponent("log.jsonl"), encoding: .utf8).split(separator: "\n") {
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            var terms: [String: Double] = [:]
            for (k, v) in object where !["iter", "seconds"].contains(k) { terms[k] = (v as? NSNumber)?.doubleValue }
            // A validation line shares its step with the training line.
            out[(object["iter"] as! NSNumber).intValue, default: [:]].merge(terms) { $1 }
        }
        return out
    }

    /// The largest relative difference of any logged term at any step; fails when the steps differ.
    private func largestLossDifference(_ a: URL, _ b: URL, file: StaticString = #filePath, line: UInt = #line) throws -> Double {
        let x = try losses(a), y = try losses(b)
        XCTAssertEqual(Set(x.keys), Set(y.keys), "logged steps", file: file, line: line)
        var worst = 0.0
        for (iter, terms) in x {
            XCTAssertEqual(Set(terms.keys), Set(y[iter]?.keys ?? [:].keys), "terms at \(iter)", file: file, line: line)
            for (name, value) in terms {
                let other = try XCTUnwrap(y[iter]?[name], "iteration \(iter) lacks \(name)", file: file, line: line)
                worst = max(worst, abs(other - value) / max(abs(value), 1e-12))
            }
        }
        return worst
    }

    /// The bound on `largestWeightDifference` between runs that must be equivalent. Adam divides each gradient by
    /// its running RMS, so a rounding-level difference in a near-zero gradient component (a different summation
    /// order: one process sums the batch in one product, two ranks sum halves and all-reduce, and the two may take
    /// different GEMM kernels for their different inner dimensions) can move that weight by a visible fraction of
    /// a step: seen up to 1.3e-5 with the direct narrow-layer products, against a travel of lr · steps = 1.2e-3 at
    /// the default 2e-4. A wrong shard or wrong negatives differ by ~1e-3 (per-shard negatives: 1.2e-3).
    private let weightTolerance: Float = 5e-5

    /// The largest absolute difference between the final checkpoints' weights (student and projectors).
    private func largestWeightDifference(_ a: URL, _ b: URL, iteration: Int) throws -> Float {
        let name = String(format: "checkpoints/iter-%08d/model.safetensors", iteration)
        let x = try SafeTensors.read(a.appendingPathComponent(name)).tensors, y = try SafeTensors.read(b.appendingPathComponent(name)).tensors
        XCTAssertEqual(Set(x.keys), Set(y.keys))
        var worst: Float = 0, worstKey = ""
        for (key, t) in x {
            let u = try XCTUnwrap(y[key])
            XCTAssertEqual(t.shape, u.shape, key)
            let p = t.pointer, q = u.pointer
            for i in 0..<t.count where abs(p[i] - q[i]) > worst { worst = abs(p[i] - q[i]); worstKey = "\(key)[\(i)] \(p[i]) vs \(q[i])" }
        }
        print("largest weight difference at \(worstKey)")
        return worst
    }

    // MARK: - Equivalence

    func testTwoRanksLogTheLossesAndReachTheWeightsOfOneProcess() throws {
        let f = try fixture()
        // `none` also validates (rank 0 alone) and writes samples and best.safetensors.
        let validation = ["--val-data", f.data.path, "--val-every", "3", "--val-images", "2", "--samples", "1"]
        for method in ["skd", "none"] {
            let one = f.dir.appendingPathComponent("one-\(method)"), two = f.dir.appendingPathComponent("two-\(method)")
            let extra = method == "none" ? validation : []
            let a = try skd(distill(f, method: method, output: one) + extra)
            XCTAssertEqual(a.status, 0, a.stderr)
            let b = finish(try mpi(2, distill(f, method: method, output: two) + extra))
            XCTAssertEqual(b.status, 0, b.stderr)
            XCTAssertTrue(b.stderr.contains("MPI: 2 ranks"), b.stderr)
            XCTAssertEqual(b.stderr.components(separatedBy: "run folder:").count, 2, "rank 0 alone reports: \(b.stderr)")
            XCTAssertTrue(b.stdout.contains("finished 6 iterations"), b.stdout)
            if method == "skd" { XCTAssertNotNil(try losses(two)[1]?["cl"], "the contrastive term is part of the comparison") }
            if method == "none" {
                XCTAssertNotNil(try losses(two)[6]?["val_psnr"], "validation is part of the comparison")
                XCTAssertEqual(b.stderr.components(separatedBy: "validation at 3").count, 2, "rank 0 alone validates: \(b.stderr)")
                XCTAssertTrue(FileManager.default.fileExists(atPath: two.appendingPathComponent("best.safetensors").path))
                let samples = try FileManager.default.contentsOfDirectory(atPath: two.appendingPathComponent("samples").path)
                XCTAssertEqual(samples.count, 2, "one sample at each of 2 validations: \(samples)")
            }
            let lossDifference = try largestLossDifference(one, two)
            let weightDifference = try largestWeightDifference(one, two, iteration: 6)
            print("equivalence \(method): largest relative loss difference \(lossDifference), largest weight difference \(weightDifference)")
            XCTAssertLessThanOrEqual(lossDifference, 1e-5, method)
            XCTAssertLessThanOrEqual(weightDifference, weightTolerance, method)
        }
    }

    /// Runs `/sbin/ip`-style `ip arguments`; its status.
    @discardableResult
    private func ip(_ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ip"] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }

    func testTwoRanksInTwoNetworkNamespacesJoinedByAVethPair() throws {
        let f = try fixture()
        // Two namespaces of this test's own, a veth pair between them, a private subnet; mpirun starts in the first
        // and reaches the second through an rsh agent that enters it (no ssh), and the ranks talk TCP over the veth.
        let tag = "\(getpid() % 100_000)"
        let (a, b) = ("skd-\(tag)-a", "skd-\(tag)-b")
        let (hostA, hostB) = ("10.77.0.1", "10.77.0.2")
        guard getuid() == 0, ip(["netns", "add", a]) == 0 else { throw XCTSkip("network namespaces need root and iproute2") }
        defer { ip(["netns", "del", a]); ip(["netns", "del", b]) }
        for step in [["netns", "add", b], ["link", "add", "skdv\(tag)a", "type", "veth", "peer", "name", "skdv\(tag)b"],
                     ["link", "set", "skdv\(tag)a", "netns", a], ["link", "set", "skdv\(tag)b", "netns", b],
                     ["-n", a, "addr", "add", hostA + "/24", "dev", "skdv\(tag)a"], ["-n", b, "addr", "add", hostB + "/24", "dev", "skdv\(tag)b"],
                     ["-n", a, "link", "set", "skdv\(tag)a", "up"], ["-n", b, "link", "set", "skdv\(tag)b", "up"],
                     ["-n", a, "link", "set", "lo", "up"], ["-n", b, "link", "set", "lo", "up"]] {
            XCTAssertEqual(ip(step), 0, "ip \(step.joined(separator: " "))")
        }
        let agent = f.dir.appendingPathComponent("netns-agent.sh")
        try Data("""
            #!/bin/sh
            while [ "${1#-}" != "$1" ]; do shift; done
            host=$1; shift
            case $host in \(hostA)) ns=\(a);; \(hostB)) ns=\(b);; *) echo "unknown host $host" >&2; exit 1;; esac
            exec ip netns exec $ns /bin/sh -c "$*"

            """.utf8).write(to: agent)
        chmod(agent.path, 0o755)

        let one = f.dir.appendingPathComponent("one"), two = f.dir.appendingPathComponent("two")
        XCTAssertEqual(try skd(distill(f, method: "skd", output: one, iterations: 3)).status, 0)
        let (skd, mpirun) = try tools()
        let r = finish(try start(URL(fileURLWithPath: "/usr/bin/env"),
            ["ip", "netns", "exec", a, mpirun.path, "--host", "\(hostA),\(hostB)", "-np", "2", "--oversubscribe",
             "--mca", "plm_rsh_agent", agent.path, "--mca", "btl", "tcp,self",
             "--mca", "btl_tcp_if_include", "10.77.0.0/24", "--mca", "oob_tcp_if_include", "10.77.0.0/24",
             "-x", "OMPI_ALLOW_RUN_AS_ROOT", "-x", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "-x", "OMPI_MCA_mpi_yield_when_idle",
             skd.path] + distill(f, method: "skd", output: two, iterations: 3)), timeout: 120)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("MPI: 2 ranks (1 on this node)"), "one rank per namespace: \(r.stderr)")
        XCTAssertLessThanOrEqual(try largestLossDifference(one, two), 1e-5)
        XCTAssertLessThanOrEqual(try largestWeightDifference(one, two, iteration: 3), weightTolerance)
    }

    func testTrainUnderMPIMatchesOneProcess() throws {
        let f = try fixture()
        func train(_ output: URL) -> [String] {
            ["train", "--model", "restormer", "--set", "network.model.dim=4", "--set", "network.model.num_blocks=[1,1,1,1]",
             "--set", "network.model.num_refinement_blocks=0", "--set", "network.model.heads=[1,1,1,1]",
             "--train-data", f.data.path, "--train-degradation", "noise:25", "--patch-size", "16", "--batch-size", "4",
             "--iterations", "4", "--log-every", "1", "--val-every", "0", "--output", output.path]
        }
        let one = f.dir.appendingPathComponent("train-one"), two = f.dir.appendingPathComponent("train-two")
        XCTAssertEqual(try skd(train(one)).status, 0)
        let r = finish(try mpi(2, train(two)))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("MPI: 2 ranks"), r.stderr)
        XCTAssertLessThanOrEqual(try largestLossDifference(one, two), 1e-5)
        XCTAssertLessThanOrEqual(try largestWeightDifference(one, two, iteration: 4), weightTolerance)
    }

    // MARK: - Resume and signals

    func testResumeUnderMPIAndWithAnotherNumberOfRanksReproducesTheLosses() throws {
        let f = try fixture()
        let straight = f.dir.appendingPathComponent("straight"), pieces = f.dir.appendingPathComponent("pieces")
        XCTAssertEqual(try skd(distill(f, method: "skd", output: straight)).status, 0)
        // K = 2 stops after 2 steps, K = 2 resumes to 4, K = 1 resumes to the end.
        let first = finish(try mpi(2, distill(f, method: "skd", output: pieces) + ["--stop-after", "2"]))
        XCTAssertEqual(first.status, 130, first.stderr)
        let second = finish(try mpi(2, ["distill", "--resume", pieces.path, "--stop-after", "4"]))
        XCTAssertEqual(second.status, 130, second.stderr)
        XCTAssertTrue(second.stderr.contains("resumed from") && second.stderr.contains("iter-00000002"), second.stderr)
        let last = try skd(["distill", "--resume", pieces.path])
        XCTAssertEqual(last.status, 0, last.stderr)
        XCTAssertTrue(last.stderr.contains("iter-00000004"), last.stderr)
        XCTAssertLessThanOrEqual(try largestLossDifference(straight, pieces), 1e-5)
        XCTAssertLessThanOrEqual(try largestWeightDifference(straight, pieces, iteration: 6), weightTolerance)
    }

    /// The ranks `mpirun` started (its children).
    private func children(of pid: Int32) -> [Int32] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.flatMap { task -> [Int32] in
            let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/children", encoding: .utf8)) ?? ""
            return text.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
    }

    /// Starts a long two-rank run and returns once it has logged `steps` steps, with its ranks' process ids.
    private func runningJob(_ f: (dir: URL, data: URL, teacher: URL), output: URL, steps: Int = 3) throws -> (Process, [Int32]) {
        let job = try mpi(2, distill(f, method: "skd", output: output, iterations: 100_000), quiet: false)
        let deadline = Date().addingTimeInterval(90)
        while Date() < deadline, job.isRunning {
            let log = (try? String(contentsOf: output.appendingPathComponent("log.jsonl"), encoding: .utf8)) ?? ""
            if log.split(separator: "\n").count >= steps { break }
            usleep(20_000)
        }
        let ranks = children(of: job.processIdentifier)
        XCTAssertEqual(ranks.count, 2, "two ranks under mpirun")
        return (job, ranks)
    }

    func testSIGTERMOnOneRankStopsEveryRankWithACheckpoint() throws {
        let f = try fixture()
        let run = f.dir.appendingPathComponent("signalled")
        let (job, ranks) = try runningJob(f, output: run)
        kill(try XCTUnwrap(ranks.last), SIGTERM)
        let r = finish(job, timeout: 60)
        XCTAssertEqual(r.status, 130, r.stderr)
        XCTAssertEqual(r.stderr.components(separatedBy: "skd: error: interrupted").count, 2, "rank 0 alone reports: \(r.stderr)")
        XCTAssertTrue(r.stderr.contains("--resume"), r.stderr)
        let stopped = try XCTUnwrap(try losses(run).keys.max())
        let checkpoint = run.appendingPathComponent(String(format: "checkpoints/iter-%08d/state.json", stopped))
        XCTAssertTrue(FileManager.default.fileExists(atPath: checkpoint.path), "rank 0 checkpoints the last complete step \(stopped)")
    }

    func testAKilledRankEndsTheJobWithinBoundedTime() throws {
        let f = try fixture()
        let (job, ranks) = try runningJob(f, output: f.dir.appendingPathComponent("killed"))
        kill(try XCTUnwrap(ranks.last), SIGKILL)
        let r = finish(job, timeout: 60)
        let status = try XCTUnwrap(r.status, "the job outlived a dead rank by 60 s: \(r.stderr)")
        XCTAssertNotEqual(status, 0, r.stderr)
        XCTAssertLessThan(r.seconds, 30, "the surviving rank must not wait on the dead one")
        XCTAssertTrue(r.stderr.contains("signal 9") || r.stderr.contains("Killed"), "mpirun names the dead rank: \(r.stderr)")
    }

    func testAnErrorOnOneRankEndsTheJobWithItsMessage() throws {
        let f = try fixture()
        // A file whose header passes the checks before work but whose pixels are cut off: the rank whose share of
        // the first batch holds it fails while the other waits in the all-reduce.
        let data = f.dir.appendingPathComponent("broken")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        for i in 0..<3 { try photo(24, seed: i).write(to: data.appendingPathComponent("p\(i).png")) }
        let whole = f.dir.appendingPathComponent("whole.png")
        try photo(24, seed: 3).write(to: whole)
        try Data(try Data(contentsOf: whole).prefix(120)).write(to: data.appendingPathComponent("p3.png"))
        // --skip-preflight: the pre-flight decode would name the file before any work; this tests the failure mid-run.
        let broken = distill((f.dir, data, f.teacher), method: "none", output: f.dir.appendingPathComponent("broken-run"),
                             iterations: 20) + ["--skip-preflight"]
        let r = finish(try mpi(2, broken, quiet: false), timeout: 60)
        let status = try XCTUnwrap(r.status, "the job outlived a failed rank by 60 s: \(r.stderr)")
        XCTAssertNotEqual(status, 0, r.stderr)
        XCTAssertLessThan(r.seconds, 30, r.stderr)
        XCTAssertTrue(r.stderr.contains("p3.png") && r.stderr.contains("ending the whole MPI job"), r.stderr)
    }

    // MARK: - Layout errors

    private func assertOneLine(_ r: (status: Int32?, stdout: String, stderr: String, seconds: Double), mentions expected: [String],
                               file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, 2, r.stderr, file: file, line: line)
        let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("skd: error:") }
        XCTAssertEqual(errors.count, 1, "one error line: \(r.stderr)", file: file, line: line)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "nothing else: \(r.stderr)", file: file, line: line)
        for e in expected { XCTAssertTrue(r.stderr.contains(e), "'\(r.stderr)' should mention '\(e)'", file: file, line: line) }
    }

    func testBadLayoutsGiveOneLineBeforeAnyWork() throws {
        let f = try fixture()
        let run = f.dir.appendingPathComponent("bad")
        assertOneLine(finish(try mpi(2, distill(f, method: "skd", output: run, batch: 3))), mentions: ["batch_size 3", "2 MPI ranks"])
        // Unequal configurations: mpirun's MPMD form gives rank 1 another seed.
        let (skd, mpirun) = try tools()
        let a = distill(f, method: "skd", output: run), b = a + ["--seed", "5"]
        let unequal = finish(try start(mpirun, ["-np", "1", "--oversubscribe", "-q", skd.path] + a + [":", "-np", "1", skd.path] + b))
        assertOneLine(unequal, mentions: ["rank 1", "seed: 5", "rank 0"])
        assertOneLine(finish(try mpi(2, distill(f, method: "none", output: run) + ["--threads", "0"])), mentions: ["--threads"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.path), "no work may start")
    }
}
