// One API shape for the three families: case-insensitive presets, enums for the closed choices, Swift property
// names with the official state-dict keys, one MAC-count signature.

import Foundation
import SKDModels
import SKDNN
import SKDTensor
import XCTest

final class APIShapeTests: XCTestCase {
    /// Every family's presets are found whatever the case of the name, directly and through `ModelSpec`.
    func testPresetLookupIsCaseInsensitiveForEveryFamily() throws {
        for name in ModelSpec.presetNames {
            for variant in [name.uppercased(), name.prefix(1).uppercased() + name.dropFirst()] {
                XCTAssertEqual(try ModelSpec.preset(variant), try ModelSpec.preset(name), variant)
            }
        }
        XCTAssertEqual(RestormerConfig.preset("Restormer-S"), RestormerConfig.preset("restormer-s"))
        XCTAssertEqual(UformerConfig.preset("UFORMER-B"), UformerConfig.preset("uformer-b"))
        XCTAssertEqual(DRSformerConfig.preset("DRSformer-S"), DRSformerConfig.preset("drsformer-s"))
        XCTAssertNotNil(DRSformerConfig.preset("DRSFORMER"))
        XCTAssertNil(DRSformerConfig.preset("drsformer-xs"))
    }

    /// The closed choices decode from the official strings only; another string is refused before anything is
    /// built, with the key, the value and the accepted values named.
    func testClosedChoicesDecodeOnlyTheOfficialStrings() throws {
        let decoder = JSONDecoder()
        let uformer = try decoder.decode(UformerConfig.self, from: Data(#"{"token_mlp": "mlp"}"#.utf8))
        XCTAssertEqual(uformer.tokenMlp, .mlp)
        XCTAssertEqual(uformer.tokenProjection, .linear)
        let drs = try decoder.decode(DRSformerConfig.self, from: Data(#"{"LayerNorm_type": "BiasFree"}"#.utf8))
        XCTAssertEqual(drs.layerNormType, .biasFree)
        for (json, expected) in [(#"{"arch": "uformer", "token_mlp": "conv"}"#, ["token_mlp", "'conv'", "leff, ffn, mlp"]),
                                 (#"{"arch": "uformer", "token_projection": "conv"}"#, ["token_projection", "'conv'", "linear"]),
                                 (#"{"arch": "drsformer", "LayerNorm_type": "withbias"}"#, ["LayerNorm_type", "'withbias'", "WithBias, BiasFree"]),
                                 (#"{"arch": "restormer", "LayerNorm_type": "Other"}"#, ["LayerNorm_type", "'Other'"])] {
            XCTAssertThrowsError(try ModelSpec(json: json), json) { error in
                let message = "\(error)"
                XCTAssertFalse(message.contains("\n"), message)
                for e in expected { XCTAssertTrue(message.contains(e), "\(json): '\(message)' should mention \(e)") }
            }
        }
        // The official strings are written back.
        let encoded = String(decoding: try JSONEncoder().encode(DRSformerConfig(layerNormType: .biasFree)), as: UTF8.self)
        XCTAssertTrue(encoded.contains(#""LayerNorm_type":"BiasFree""#), encoded)
    }

    /// Swift properties have Swift names; the parameter names stay the official state-dict keys.
    func testStateDictKeysKeepTheOfficialNames() throws {
        let restormer = Restormer(config: try XCTUnwrap(RestormerConfig.preset("restormer-s")))
        let uformer = Uformer(config: try XCTUnwrap(UformerConfig.preset("uformer-s")))
        let drsformer = DRSformer(config: DRSformerConfig(dim: 8, numBlocks: [1, 1, 1, 1], mefc: true))
        let expected: [(Module, [String])] = [
            (restormer, ["patch_embed.proj.weight", "encoder_level1.0.attn.qkv_dwconv.weight", "down1_2.body.0.weight",
                         "reduce_chan_level3.weight", "decoder_level1.0.ffn.project_in.weight", "up2_1.body.0.weight"]),
            (uformer, ["input_proj.proj.0.weight", "encoderlayer_0.blocks.0.attn.relative_position_bias_table",
                       "encoderlayer_0.blocks.0.attn.qkv.to_kv.weight", "dowsample_0.conv.0.weight", "output_proj.proj.0.weight",
                       "decoderlayer_3.blocks.0.attn.qkv.to_q.weight", "upsample_3.deconv.0.weight"]),
            (drsformer, ["patch_embed.proj.weight", "encoder_level0.layers.0.ca_fc.0.weight",
                         "encoder_level1.0.ffn.dwconv3x3_1.weight", "latent.0.attn.project_out.weight",
                         "refinement.layers.1._ops.0._ops.5.op.1.weight", "down3_4.body.0.weight"]),
        ]
        for (model, keys) in expected {
            let names = Set(model.stateDict().keys)
            for key in keys { XCTAssertTrue(names.contains(key), "\(type(of: model)): no parameter \(key)") }
            // No Swift-only name leaks into a key: every component is a lower-case official name or an index
            // (LayerNorm_type is an argument, not a member).
            for name in names {
                XCTAssertNil(name.range(of: #"[a-z][A-Z]"#, options: .regularExpression), "\(type(of: model)): \(name)")
            }
        }
        XCTAssertTrue(restormer.patchEmbed === restormer.namedModules().first { $0.name == "patch_embed" }?.module)
    }

    /// Blocks of every family count MACs with the same `(height:width:)` signature, and the network totals are
    /// the sums of their parts.
    func testOneMultiplyAccumulateSignature() throws {
        let restormer = Restormer(config: try XCTUnwrap(RestormerConfig.preset("restormer-s")))
        let drsformer = DRSformer(config: try XCTUnwrap(DRSformerConfig.preset("drsformer-s")))
        let uformer = Uformer(config: try XCTUnwrap(UformerConfig.preset("uformer-s")))
        let block = restormer.encoderLevel1[0]
        XCTAssertEqual(block.multiplyAccumulates(height: 6, width: 10),
                       block.attn.multiplyAccumulates(height: 6, width: 10) + block.ffn.multiplyAccumulates(height: 6, width: 10))
        let drsBlock = drsformer.encoderLevel1[0]
        XCTAssertEqual(drsBlock.multiplyAccumulates(height: 6, width: 10),
                       drsBlock.attn.multiplyAccumulates(height: 6, width: 10) + drsBlock.ffn.multiplyAccumulates(height: 6, width: 10))
        let lewin = uformer.encoderLayer0.blocks[0]
        XCTAssertEqual(uformer.encoderLayer0.multiplyAccumulates(height: 16, width: 16),
                       uformer.encoderLayer0.blocks.reduce(0) { $0 + $1.multiplyAccumulates(height: 16, width: 16) })
        XCTAssertGreaterThan(lewin.mlp.multiplyAccumulates(height: 16, width: 16), 0)
        XCTAssertEqual(restormer.down1To2.multiplyAccumulates(height: 8, width: 8), 32 * 16 * 9 * 64)
    }
}
