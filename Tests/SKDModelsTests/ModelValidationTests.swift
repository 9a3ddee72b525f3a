// Architecture validation (issue 14): every family's arguments are checked before any tensor is made, the size
// estimate matches the built networks, and MACs are counted at any size.

import Foundation
import SKDModels
import SKDTestSupport
import XCTest

final class ModelValidationTests: XCTestCase {
    /// Every preset passes, and the parameter estimate (made without building) is within 2% of the real count.
    func testPresetsPassAndTheSizeEstimateMatches() throws {
        for name in ModelSpec.presetNames {
            let spec = try ModelSpec.preset(name)
            XCTAssertNoThrow(try spec.validate(), name)
            let actual = Double(spec.makeModel().parameterCount)
            XCTAssertEqual(spec.estimatedParameters / actual, 1, accuracy: 0.02, "\(name): estimate \(spec.estimatedParameters), actual \(actual)")
        }
    }

    private func message(_ dictionary: [String: Any]) -> String {
        do { _ = try ModelSpec(dictionary: dictionary); return "" } catch { return "\(error)" }
    }

    func testImpossibleArgumentsAreNamed() {
        let cases: [([String: Any], [String])] = [
            (["arch": "restormer", "dim": 9], ["dim", "9"]),
            (["arch": "restormer", "dim": 0], ["dim"]),
            (["arch": "restormer", "dim": -8], ["dim", "-8"]),
            (["arch": "restormer", "dim": 4, "heads": [3, 3, 3, 3]], ["3 heads"]),
            (["arch": "restormer", "num_blocks": [1, 1, 1]], ["num_blocks", "4"]),
            (["arch": "restormer", "num_blocks": [1, -1, 1, 1]], ["num_blocks", "-1"]),
            (["arch": "restormer", "ffn_expansion_factor": 0], ["ffn_expansion_factor"]),
            (["arch": "restormer", "ffn_expansion_factor": 1e300], ["ffn_expansion_factor"]),
            (["arch": "restormer", "ffn_expansion_factor": Double.nan], ["ffn_expansion_factor"]),
            (["arch": "restormer", "inp_channels": 6, "dual_pixel_task": true], ["inp_channels"]),
            (["arch": "restormer", "dim": 100_000], ["parameters", "limit"]),
            (["arch": "restormer", "dim": Int.max], ["dim"]),
            (["arch": "restormer", "num_block": [1, 1, 1, 1]], ["num_block", "unknown"]),
            (["arch": "restormer", "dim": "wide"], ["dim", "integer"]),
            (["preset": "restormer-s", "dims": 4], ["dims"]),
            (["preset": "restormer-s", "arch": "uformer"], ["restormer", "uformer"]),
            (["arch": "uformer", "embed_dim": 0], ["embed_dim"]),
            (["arch": "uformer", "win_size": 0], ["win_size"]),
            (["arch": "uformer", "img_size": 8], ["img_size"]),
            (["arch": "uformer", "img_size": 32, "win_size": 8, "modulator": true], ["modulator", "win_size"]),
            (["arch": "uformer", "depths": [1, 1, 1]], ["depths", "9"]),
            (["arch": "uformer", "embed_dim": 8, "num_heads": [3, 2, 4, 8, 16, 16, 8, 4, 2]], ["3 heads", "encoder stage 0"]),
            (["arch": "uformer", "mlp_ratio": 0], ["mlp_ratio"]),
            (["arch": "uformer", "token_mlp": "conv"], ["token_mlp"]),
            (["arch": "uformer", "embed_dim": 100_000], ["parameters"]),
            (["arch": "drsformer", "dim": 7], ["dim"]),
            (["arch": "drsformer", "dim": 8, "heads": [8, 2, 4, 8]], ["channels per head"]),
            (["arch": "drsformer", "LayerNorm_type": "Other"], ["LayerNorm_type"]),
            (["arch": "drsformer", "out_channels": 1], ["out_channels"]),
        ]
        for (dictionary, expected) in cases {
            let m = message(dictionary)
            XCTAssertFalse(m.isEmpty, "\(dictionary) should be refused")
            XCTAssertFalse(m.contains("\n"), m)
            for e in expected { XCTAssertTrue(m.contains(e), "\(dictionary): '\(m)' should mention '\(e)'") }
        }
    }

    /// Valid unusual configurations still pass, so the checks are not stricter than the constructors.
    func testSmallValidConfigurationsPass() throws {
        let valid: [[String: Any]] = [
            ["arch": "restormer", "dim": 4, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 0, "heads": [1, 1, 1, 1]],
            ["arch": "restormer", "dim": 2, "num_blocks": [0, 0, 0, 0], "heads": [1, 1, 1, 1], "ffn_expansion_factor": 0.5],
            ["arch": "uformer", "img_size": 32, "embed_dim": 8, "depths": [1, 1, 1, 1, 1, 1, 1, 1, 1], "win_size": 4, "modulator": true],
            ["arch": "uformer", "img_size": 16, "embed_dim": 2, "depths": [1, 1, 1, 1, 1, 1, 1, 1, 1], "num_heads": [1, 1, 1, 1, 1, 1, 1, 1, 1], "win_size": 3],
            ["arch": "drsformer", "dim": 8, "num_blocks": [1, 1, 1, 1], "mefc": false],
        ]
        for dictionary in valid {
            let spec = try ModelSpec(dictionary: dictionary)
            let model = spec.makeModel()
            XCTAssertEqual(spec.estimatedParameters / Double(model.parameterCount), 1, accuracy: 0.05, "\(dictionary)")
            // Any size can be counted; it is the padded size's count.
            let m = model.sizeMultiple
            XCTAssertEqual(try ModelCost.multiplyAccumulates(model, height: 3 * m - 1, width: m + 1),
                           model.multiplyAccumulates(height: 3 * m, width: 2 * m))
        }
        XCTAssertThrowsError(try ModelCost.multiplyAccumulates(try ModelSpec.preset("restormer-s").makeModel(), height: 0, width: 8))
    }
}
