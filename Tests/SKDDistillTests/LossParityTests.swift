import Foundation
import SKDDistill
import SKDTensor
import SKDTestSupport
import XCTest

/// The four loss reference files, recomputed: losses within 1e-5, intermediates and gradients within 1e-4.
final class LossParityTests: XCTestCase {
    private func check(_ name: String, expectedKind: LossReferenceCheck.Kind) throws {
        guard let url = try referenceFile("golden/\(name).safetensors") else { return }
        let file = try SafeTensors.read(url)
        XCTAssertEqual(LossReferenceCheck.kind(of: file), expectedKind)
        let results = try LossReferenceCheck.run(file, name: name)
        XCTAssertFalse(results.isEmpty)
        for r in results {
            print(String(format: "%@ %@: relative error %.3e (tolerance %.0e)", name, r.name, r.relativeError, r.tolerance))
            XCTAssertLessThanOrEqual(r.relativeError, r.tolerance, "\(name): \(r.name)")
        }
    }

    func testMCAAndGaussianKernel() throws { try check("skd_mca_gk", expectedKind: .mcaGK) }
    func testContrastiveInfoNCE() throws { try check("skd_contrastive", expectedKind: .contrastive) }
    func testContrastiveRatio() throws { try check("skd_contrastive_ratio", expectedKind: .contrastive) }
    func testWaveletKD() throws { try check("wave_kd", expectedKind: .wavelet) }
}
