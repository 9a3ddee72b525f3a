// OpenBLAS kernel selection: the plan for any reported core and CPU, and the repair as it runs on this machine.

import Foundation
import SKDTensor
import XCTest

final class BLASKernelSelectionTests: XCTestCase {
    private let xeon = CPUInfo(vendor: "GenuineIntel", brand: "Intel(R) Xeon(R) Processor", family: 6, model: 207,
                               features: [.sse3, .avx, .fma, .avx2, .avx512f, .avx512bw, .avx512dq, .avx512vl, .avx512bf16])
    private let zen4 = CPUInfo(vendor: "AuthenticAMD", brand: "AMD EPYC 9R14", family: 25, model: 17,
                               features: [.sse3, .avx, .fma, .avx2, .avx512f, .avx512bw, .avx512dq, .avx512vl, .avx512bf16])
    private let zen2 = CPUInfo(vendor: "AuthenticAMD", brand: "AMD EPYC 7R32", family: 23, model: 49,
                               features: [.sse3, .avx, .fma, .avx2])
    private let ivyBridge = CPUInfo(vendor: "GenuineIntel", brand: "Intel(R) Xeon(R) CPU E5-2680 v2", family: 6, model: 62,
                                    features: [.sse3, .avx])
    private let oldCPU = CPUInfo(vendor: "GenuineIntel", brand: "Intel(R) Core(TM)2", family: 6, model: 15, features: [.sse3])

    func testVectorLevelOfCPUs() {
        XCTAssertEqual(xeon.vectorLevel, .avx512)
        XCTAssertEqual(zen2.vectorLevel, .avx2)
        XCTAssertEqual(ivyBridge.vectorLevel, .avx)
        XCTAssertEqual(oldCPU.vectorLevel, .sse)
        // AVX-512 F alone (Knights Landing) is not the F/BW/DQ/VL set the SkylakeX kernels need.
        let knl = CPUInfo(vendor: "GenuineIntel", brand: "", family: 6, model: 87, features: [.avx, .fma, .avx2, .avx512f])
        XCTAssertEqual(knl.vectorLevel, .avx2)
        // AVX2 without FMA is not enough for the Haswell kernels.
        let noFMA = CPUInfo(vendor: "CentaurHauls", brand: "", family: 7, model: 59, features: [.avx, .avx2])
        XCTAssertEqual(noFMA.vectorLevel, .avx)
    }

    func testCoreLevels() {
        XCTAssertEqual(BLASKernelSelection.level(ofCore: "Prescott"), .sse)
        XCTAssertEqual(BLASKernelSelection.level(ofCore: "sandybridge"), .avx)
        XCTAssertEqual(BLASKernelSelection.level(ofCore: "HASWELL"), .avx2)
        XCTAssertEqual(BLASKernelSelection.level(ofCore: "Zen"), .avx2)
        XCTAssertEqual(BLASKernelSelection.level(ofCore: "SkylakeX"), .avx512)
        XCTAssertEqual(BLASKernelSelection.level(ofCore: "Cooperlake"), .avx512)
        XCTAssertEqual(BLASKernelSelection.level(ofCore: "SapphireRapids"), .avx512)
        XCTAssertNil(BLASKernelSelection.level(ofCore: "NEOVERSEV1"))
    }

    func testPlanRepairsTheFallbackCore() {
        // The issue's case: Debian 12's OpenBLAS 0.3.21 on a family 6 model 207 Xeon reports Prescott.
        XCTAssertEqual(BLASKernelSelection.plan(reportedCore: "Prescott", cpu: xeon, userCoreType: nil),
                       .switchTo(candidates: ["SkylakeX", "Haswell"]))
        XCTAssertEqual(BLASKernelSelection.plan(reportedCore: "Sandybridge", cpu: xeon, userCoreType: nil),
                       .switchTo(candidates: ["SkylakeX", "Haswell"]))
        // An AVX2 core on an AVX-512 CPU: only the wider core is a candidate.
        XCTAssertEqual(BLASKernelSelection.plan(reportedCore: "Haswell", cpu: xeon, userCoreType: nil),
                       .switchTo(candidates: ["SkylakeX"]))
        XCTAssertEqual(BLASKernelSelection.plan(reportedCore: "Prescott", cpu: zen2, userCoreType: nil),
                       .switchTo(candidates: ["Zen", "Haswell"]))
        XCTAssertEqual(BLASKernelSelection.plan(reportedCore: "Core2", cpu: ivyBridge, userCoreType: nil),
                       .switchTo(candidates: ["Sandybridge"]))
    }

    func testPlanKeepsGoodOrUserChoices() {
        func keeps(_ core: String?, _ cpu: CPUInfo, user: String? = nil, file: StaticString = #filePath, line: UInt = #line) {
            guard case .keep = BLASKernelSelection.plan(reportedCore: core, cpu: cpu, userCoreType: user) else {
                return XCTFail("expected to keep \(core ?? "nil") on \(cpu.brand)", file: file, line: line)
            }
        }
        keeps("Cooperlake", zen4)      // what 0.3.21 picks on Zen 4: already right
        keeps("SkylakeX", xeon)
        keeps("Zen", zen2)
        keeps("Sandybridge", ivyBridge)
        keeps("Prescott", oldCPU)      // nothing better exists
        keeps("Prescott", xeon, user: "Prescott")  // the user's OPENBLAS_CORETYPE is never overridden
        keeps("NEOVERSEN1", xeon)      // a core this code does not rank
        keeps(nil, xeon)               // another BLAS
        keeps("", xeon)
        if case let .keep(reason) = BLASKernelSelection.plan(reportedCore: "Prescott", cpu: xeon, userCoreType: "Prescott") {
            XCTAssertTrue(reason.contains("OPENBLAS_CORETYPE=Prescott"), reason)
        }
    }

    func testWarningOnlyWhenBelowTheCPU() {
        var s = BLASKernelSelection(library: "OpenBLAS 0.3.21", coreAtLoad: "Prescott", coreInUse: "Prescott", cpu: xeon,
                                    note: "OPENBLAS_CORETYPE=Prescott set by the user")
        XCTAssertTrue(s.coreIsBelowCPU)
        XCTAssertTrue(s.warning?.contains("Prescott") ?? false)
        s.coreInUse = "SkylakeX"
        XCTAssertFalse(s.coreIsBelowCPU)
        XCTAssertNil(s.warning)
    }

    /// What ran in this process: unless the user chose a core, OpenBLAS now uses one as wide as the CPU allows
    /// (on the family 6 model 207 Xeon this suite runs on, OpenBLAS 0.3.21 itself picks Prescott).
    func testSelectionInThisProcess() {
        let selection = BLAS.kernelSelection
        XCTAssertEqual(selection.cpu, CPUInfo.current)
        XCTAssertEqual(selection.coreInUse, BLAS.currentCore)
        if ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil, let level = selection.coreLevel {
            let best = BLASKernelSelection.candidates(for: selection.cpu).compactMap(BLASKernelSelection.level(ofCore:)).max()
            XCTAssertGreaterThanOrEqual(level, min(best ?? level, selection.cpu.vectorLevel), selection.description)
            XCTAssertFalse(selection.coreIsBelowCPU, selection.description)
        }
        XCTAssertTrue(BLAS.gemmsAreCorrect())
    }

    /// The switch itself, both ways: to the SSE fallback and back, GEMMs correct on each core.
    func testSwitchingCoresKeepsGEMMsCorrect() throws {
        _ = BLAS.kernelSelection
        guard let original = BLAS.currentCore, BLASKernelSelection.level(ofCore: original) != nil else {
            throw XCTSkip("BLAS core \(BLAS.currentCore ?? "?") cannot be switched")
        }
        defer { XCTAssertTrue(BLAS.switchCore(to: original)); XCTAssertEqual(BLAS.currentCore, original) }
        XCTAssertTrue(BLAS.switchCore(to: "Prescott"))
        XCTAssertEqual(BLAS.currentCore, "Prescott")
        XCTAssertTrue(BLAS.gemmsAreCorrect())
        XCTAssertFalse(BLAS.switchCore(to: "NoSuchCore"))  // refused before OpenBLAS sees it
        XCTAssertEqual(BLAS.currentCore, "Prescott")
        for core in BLASKernelSelection.candidates(for: CPUInfo.current) {
            XCTAssertTrue(BLAS.switchCore(to: core), core)
            XCTAssertTrue(BLAS.gemmsAreCorrect(), core)
        }
    }

    func testCPUInfoOfThisMachine() {
        let cpu = CPUInfo.current
        #if arch(x86_64)
        XCTAssertFalse(cpu.vendor.isEmpty)
        XCTAssertTrue(cpu.features.contains(.sse3))
        // Cross-check with the kernel's view where it exists.
        if let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
           let flagsLine = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) {
            let flags = Set(flagsLine.split(separator: ":")[1].split(separator: " ").map(String.init))
            for (feature, name) in CPUInfo.Features.named where ["avx", "fma", "avx2", "avx512f", "avx512bw", "avx512vl"].contains(name) {
                XCTAssertEqual(cpu.features.contains(feature), flags.contains(name), name)
            }
        }
        #endif
    }
}
