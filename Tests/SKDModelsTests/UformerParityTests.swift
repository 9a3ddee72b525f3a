// Uformer against the official PyTorch implementation (golden file), its statistics against the official
// figures, and finite-difference checks of its building blocks.

import CSKDKernels
import Foundation
import SKDModels
import SKDNN
import SKDTensor
import SKDTestSupport
import XCTest

final class UformerParityTests: XCTestCase {
    /// Parameters and MACs of the presets at 512×512 against the official figures (within 1 %).
    func testPresetStatistics() throws {
        let expected: [(String, Double, Double)] = [("uformer-b", 50.88e6, 346.3e9), ("uformer-s", 7.86e6, 56.6e9)]
        for (name, params, macs) in expected {
            let config = try XCTUnwrap(UformerConfig.preset(name))
            let model = Uformer(config: config)
            let p = Double(model.parameterCount), m = Double(model.multiplyAccumulates(height: 512, width: 512))
            print(String(format: "%@: %.3f M parameters, %.2f GMAC at 512×512", name, p / 1e6, m / 1e9))
            XCTAssertLessThanOrEqual(abs(p - params) / params, 0.01, "\(name) parameters")
            XCTAssertLessThanOrEqual(abs(m - macs) / macs, 0.01, "\(name) MACs")
            XCTAssertEqual(model.sizeMultiple, 128, "\(name): 16 down-sampling × window 8")
        }
        XCTAssertNil(UformerConfig.preset("uformer-xl"))
    }

    /// The official per-stage window rule: a stage whose side (from `img_size`) is at most the window uses that
    /// side as its window and no shift; the relative-position tables are sized accordingly.
    func testStageWindows() {
        let model = Uformer(config: UformerConfig(imgSize: 32, embedDim: 4, winSize: 4, modulator: true))
        XCTAssertEqual(model.encoderLayer0.blocks.map(\.shift), [0, 2])
        XCTAssertEqual(model.encoderLayer2.blocks.map(\.shift), [0, 2])
        XCTAssertEqual(model.encoderLayer3.blocks.map(\.shift), [0, 0])     // side 4 = window
        XCTAssertEqual(model.conv.blocks.map(\.window), [2, 2])              // side 2 < window
        XCTAssertEqual(model.conv.blocks[0].attn.relativePositionBiasTable.shape, [9, 16])
        XCTAssertEqual(model.decoderLayer0.blocks[1].modulator?.weight.shape, [16, 64])
        XCTAssertEqual(model.sizeMultiple, 32)          // lcm(16, 2^level · window): 8·4 and 16·2
    }

    /// Inputs of any size are reflect-padded to the size multiple, run, and cropped back.
    func testPaddingOfArbitrarySizes() {
        let model = Uformer(config: UformerConfig(imgSize: 32, embedDim: 4, depths: [1, 1, 1, 1, 1, 1, 1, 1, 1],
                                                  winSize: 4, modulator: true))
        model.eval()
        var rng = SKDRandom(seed: 11)
        let x = Tensor.uniform([1, 3, 21, 40], low: -1, high: 1, using: &rng)
        let (y, manual) = noGrad { () -> (Tensor, Tensor) in
            let y = model(x)
            let padded = x.padded2d(left: 0, right: 24, top: 0, bottom: 11, mode: .reflect)
            XCTAssertEqual(padded.shape, [1, 3, 32, 64])
            let full = model(padded)
            return (y, full.cropped2d(top: 0, left: 0, height: 21, width: 40))
        }
        XCTAssertEqual(y.shape, [1, 3, 21, 40])
        XCTAssertLessThanOrEqual(relativeError(y, manual), 1e-6)

        // A pad larger than the image reflects the padded map again.
        let tiny = Tensor.uniform([1, 3, 5, 3], low: -1, high: 1, using: &rng)
        let out = noGrad { model(tiny) }
        XCTAssertEqual(out.shape, [1, 3, 5, 3])
        XCTAssertTrue(out.values.allSatisfy(\.isFinite))
    }

    /// The fused shift + partition against `torch.roll` followed by `window_partition`, written naively; and the
    /// merge as its inverse.
    func testWindowPartitionMatchesRollAndPartition() {
        let b = 2, h = 8, w = 12, c = 3, win = 4, shift = 2
        var rng = SKDRandom(seed: 3)
        let x = Tensor.uniform([b, h * w, c], low: -1, high: 1, using: &rng)
        let windows = x.windowPartitioned(height: h, width: w, window: win, shift: shift)
        XCTAssertEqual(windows.shape, [b * (h / win) * (w / win), win * win, c])
        let gridW = w / win
        for bi in 0..<b {
            for r in 0..<h {
                for col in 0..<w {
                    // rolled[r, col] = x[(r + shift) % h, (col + shift) % w]
                    let src = (bi * h * w + ((r + shift) % h) * w + (col + shift) % w) * c
                    let window = bi * (h / win) * gridW + (r / win) * gridW + col / win
                    let dst = (window * win * win + (r % win) * win + col % win) * c
                    for k in 0..<c { XCTAssertEqual(windows.pointer[dst + k], x.pointer[src + k]) }
                }
            }
        }
        let merged = windows.windowMerged(batch: b, height: h, width: w, window: win, shift: shift)
        XCTAssertEqual(merged.values, x.values)
    }

    func testWindowOpsGradients() {
        var rng = SKDRandom(seed: 5)
        let x = Tensor.uniform([2, 8 * 12, 3], low: -1, high: 1, using: &rng)
        checkGradients("windowPartitioned", inputs: [x]) { i in
            i[0].windowPartitioned(height: 8, width: 12, window: 4, shift: 2).square()
        }
        let windows = Tensor.uniform([2 * 6, 16, 3], low: -1, high: 1, using: &rng)
        checkGradients("windowMerged", inputs: [windows]) { i in
            i[0].windowMerged(batch: 2, height: 8, width: 12, window: 4, shift: 1).square()
        }
    }

    /// The token-layout depthwise convolution equals the NCHW `conv2d` (groups = C, padding 1) on the same map,
    /// forward and backward, on awkward sizes, at every kernel level of its C row kernel (channel counts below,
    /// at and beyond one 16-lane vector, with a tail).
    func testTokenDepthwiseConvMatchesConv2d() {
        let savedLevel = skd_kernels_level()
        defer { skd_kernels_set_level(savedLevel) }
        for level in 0...skd_kernels_max_level() {
            skd_kernels_set_level(level)
            for (b, c, h, w) in [(2, 5, 3, 7), (1, 16, 4, 5), (2, 37, 5, 3), (1, 3, 1, 1)] {
                var rng = SKDRandom(seed: UInt64(13 + c))
                let x = Tensor.uniform([b, h * w, c], low: -1, high: 1, using: &rng)
                let weight = Tensor.uniform([c, 1, 3, 3], low: -1, high: 1, using: &rng)
                let bias = Tensor.uniform([c], low: -1, high: 1, using: &rng)
                let probe = Tensor.uniform([b, h * w, c], low: -1, high: 1, using: &rng)
                func run(_ tokens: Bool) -> [Tensor] {
                    let (xi, wi, bi) = (x.copy(), weight.copy(), bias.copy())
                    for t in [xi, wi, bi] { t.requiresGrad = true }
                    let y = tokens
                        ? Tensor.depthwiseConv3x3Tokens(xi, weight: wi, bias: bi, height: h, width: w)
                        : Tensor.conv2d(xi.permuted([0, 2, 1]).reshaped([b, c, h, w]), weight: wi, bias: bi, padding: 1, groups: c)
                            .reshaped([b, c, h * w]).permuted([0, 2, 1])
                    (y * probe).sum().backward()
                    return [y, xi.grad!, wi.grad!, bi.grad!]
                }
                for (ours, reference) in zip(run(true), run(false)) {
                    XCTAssertEqual(ours.shape, reference.shape)
                    XCTAssertLessThanOrEqual(relativeError(ours, reference), 1e-6, "level \(level) \(b)×\(h)×\(w)×\(c)")
                }
                if c == 5 {
                    checkGradients("depthwiseConv3x3Tokens level \(level)", inputs: [x, weight, bias]) { i in
                        Tensor.depthwiseConv3x3Tokens(i[0], weight: i[1], bias: i[2], height: h, width: w)
                    }
                }
            }
        }
    }

    /// In training mode a block with drop-path keeps or drops each sample's residual branches independently; in
    /// evaluation mode it is deterministic.
    func testDropPathInTrainingOnly() {
        ParameterInit.seed(17)
        let block = UformerLeWinBlock(dim: 4, resolution: 4, numHeads: 1, window: 4, shift: 0, dropPath: 0.5)
        var rng = SKDRandom(seed: 17)
        let one = Tensor.uniform([1, 16, 4], low: -1, high: 1, using: &rng)
        let x = Tensor.concat([Tensor](repeating: one, count: 64), axis: 0)
        block.train()
        let y = noGrad { block(x, height: 4, width: 4) }
        var identical = 0, distinct = Set<Float>()
        for s in 0..<64 {
            let sample = Array(y.values[(s * 64)..<((s + 1) * 64)])
            if sample == one.values { identical += 1 }      // both branches dropped
            distinct.insert(sample[0])
        }
        XCTAssertGreaterThan(identical, 4)
        XCTAssertLessThan(identical, 32)
        XCTAssertEqual(distinct.count, 4, "keep/drop of two branches gives four outcomes")
        block.eval()
        let z = noGrad { block(x, height: 4, width: 4) }
        XCTAssertEqual(Array(z.values[0..<64]), Array(z.values[64..<128]))
    }

    /// A shifted LeWin block with a modulator and two heads on a non-square map: gradients of the input and of the
    /// parameters specific to Uformer (bias table, modulator, q/kv projections, depthwise conv).
    func testLeWinBlockGradients() throws {
        let block = UformerLeWinBlock(dim: 6, resolution: 8, numHeads: 2, window: 4, shift: 2, mlpRatio: 2,
                                      modulator: true)
        block.eval()
        var rng = SKDRandom(seed: 7)
        // Larger-than-initial values so that the position bias and the modulator matter.
        block.attn.relativePositionBiasTable.assign(
            Tensor.uniform(block.attn.relativePositionBiasTable.shape, low: -1, high: 1, using: &rng))
        let modulator = try XCTUnwrap(block.modulator).weight
        modulator.assign(Tensor.uniform(modulator.shape, low: -0.5, high: 0.5, using: &rng))
        let x = Tensor.uniform([2, 8 * 12, 6], low: -1, high: 1, using: &rng)
        let leff = try XCTUnwrap(block.mlp as? UformerLeFF)
        let dw = try XCTUnwrap(leff.dwconv[0] as? Conv2d)
        let inputs = [x, block.attn.relativePositionBiasTable, modulator, block.attn.qkv.toKV.weight,
                      block.attn.qkv.toQ.weight, dw.weight, block.norm1.weight]
        checkGradients("UformerLeWinBlock", inputs: inputs, options: GradCheckOptions(eps: 1e-2, rtol: 3e-2, atol: 3e-3)) { i in
            block(i[0], height: 8, width: 12)
        }
    }

    /// A shifted block on a non-square map equals a direct computation with the official ingredients written out:
    /// roll, the relative-position index from coordinate differences, and the −100 mask from the official slices.
    func testShiftedWindowAttentionMatchesExplicitMask() {
        let dim = 4, heads = 2, win = 4, h = 8, w = 12, shift = 2
        let block = UformerLeWinBlock(dim: dim, resolution: h, numHeads: heads, window: win, shift: shift)
        block.eval()
        var rng = SKDRandom(seed: 9)
        block.attn.relativePositionBiasTable.assign(
            Tensor.uniform(block.attn.relativePositionBiasTable.shape, low: -1, high: 1, using: &rng))
        let x = Tensor.uniform([1, h * w, dim], low: -1, high: 1, using: &rng)
        let ours = noGrad { block(x, height: h, width: w) }

        // Reference: explicit official mask (region labels by slices), explicit relative index, naive loops.
        var region = [Int](repeating: 0, count: h * w)
        let rowSlices = [(0, h - win), (h - win, h - shift), (h - shift, h)]
        let colSlices = [(0, w - win), (w - win, w - shift), (w - shift, w)]
        var count = 0
        for (r0, r1) in rowSlices {
            for (c0, c1) in colSlices {
                for r in r0..<r1 { for c in c0..<c1 { region[r * w + c] = count } }
                count += 1
            }
        }
        let reference = noGrad { () -> Tensor in
            let n = block.norm1(x)
            let q = Tensor.linear(n, weight: block.attn.qkv.toQ.weight, bias: block.attn.qkv.toQ.bias)
            let kv = Tensor.linear(n, weight: block.attn.qkv.toKV.weight, bias: block.attn.qkv.toKV.bias)
            let table = block.attn.relativePositionBiasTable
            let d = dim / heads, scale = 1 / Float(d).squareRoot()
            let out = Tensor(zeros: [1, h * w, dim])
            // Token (r, c) of the rolled map is original token ((r + s) % h, (c + s) % w); attention stays within
            // rolled windows; results go back to the original position.
            func original(_ r: Int, _ c: Int) -> Int { ((r + shift) % h) * w + (c + shift) % w }
            for r in 0..<h {
                for c in 0..<w {
                    let i = original(r, c)
                    let wr = r / win, wc = c / win
                    for head in 0..<heads {
                        var logits: [Float] = [], keys: [Int] = []
                        for kr in wr * win..<(wr + 1) * win {
                            for kc in wc * win..<(wc + 1) * win {
                                let j = original(kr, kc)
                                var dot: Float = 0
                                for t in 0..<d { dot += q.pointer[i * dim + head * d + t] * scale * kv.pointer[j * 2 * dim + head * d + t] }
                                let index = (r - kr + win - 1) * (2 * win - 1) + (c - kc + win - 1)
                                dot += table.pointer[index * heads + head]
                                dot += region[r * w + c] == region[kr * w + kc] ? 0 : -100
                                logits.append(dot)
                                keys.append(j)
                            }
                        }
                        let m = logits.max()!
                        let e = logits.map { Foundation.exp($0 - m) }
                        let z = e.reduce(0, +)
                        for t in 0..<d {
                            var acc: Float = 0
                            for (k, j) in keys.enumerated() { acc += e[k] / z * kv.pointer[j * 2 * dim + dim + head * d + t] }
                            out.pointer[i * dim + head * d + t] = acc
                        }
                    }
                }
            }
            let y = x + block.attn.proj(out)
            return y + block.mlp(block.norm2(y), height: h, width: w)
        }
        XCTAssertLessThanOrEqual(relativeError(ours, reference), 1e-5)
    }

    /// The config decodes the official argument names, ignores unknown keys and takes the official defaults.
    func testConfigDecoding() throws {
        let json = #"{"arch": "uformer", "embed_dim": 16, "win_size": 4, "modulator": true, "depths": [1,1,1,1,1,1,1,1,1]}"#
        let config = try JSONDecoder().decode(UformerConfig.self, from: Data(json.utf8))
        XCTAssertEqual(config.embedDim, 16)
        XCTAssertEqual(config.winSize, 4)
        XCTAssertEqual(config.imgSize, 256)
        XCTAssertEqual(config.numHeads, [1, 2, 4, 8, 16, 16, 8, 4, 2])
        XCTAssertEqual(config.tokenMlp, .leff)
        XCTAssertTrue(config.shiftFlag)
        let roundTrip = try JSONDecoder().decode(UformerConfig.self, from: JSONEncoder().encode(config))
        XCTAssertEqual(roundTrip, config)
    }
}
