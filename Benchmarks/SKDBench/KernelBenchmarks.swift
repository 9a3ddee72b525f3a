// Kernel-level benchmarks: raw GEMM and the convolution family at the sizes Restormer runs at 256×256
// (48 channels at full resolution, 144-channel depthwise convs in the gated feed-forward).

import SKDNN
import SKDTensor

/// A seeded normal tensor; inputs of benchmarks need realistic (non-zero, non-denormal) values only.
func benchTensor(_ shape: [Int], seed: UInt64) -> Tensor {
    var rng = SKDRandom(seed: seed)
    return Tensor.randn(shape, using: &rng)
}

/// `C[m, n] = A[m, k] · B[k, n]` straight through BLAS.
func sgemmBenchmark(_ name: String, m: Int, n: Int, k: Int) -> Benchmark {
    Benchmark(name, flops: 2 * Double(m) * Double(n) * Double(k), bytes: 4 * Double(m * k + k * n + m * n)) {
        let a = benchTensor([m, k], seed: 1), b = benchTensor([k, n], seed: 2), c = Tensor(zeros: [m, n])
        return { BLAS.sgemm(m: m, n: n, k: k, a: a.pointer, b: b.pointer, c: c.pointer) }
    }
}

/// A no-grad conv2d forward on `[n, cin, h, w]` with a `[cout, cin/groups, k, k]` kernel and "same" padding.
func conv2dBenchmark(_ name: String, n: Int = 1, cin: Int, cout: Int, h: Int, w: Int, kernel k: Int, groups: Int = 1,
                     bias hasBias: Bool = true) -> Benchmark {
    let macs = Double(n * cout * h * w) * Double(cin / groups * k * k)
    return Benchmark(name, flops: 2 * macs, bytes: 4 * Double(n * (cin + cout) * h * w + cout * cin / groups * k * k)) {
        let x = benchTensor([n, cin, h, w], seed: 3)
        let weight = benchTensor([cout, cin / groups, k, k], seed: 4)
        let bias = hasBias ? benchTensor([cout], seed: 5) : nil
        return { noGrad { _ = Tensor.conv2d(x, weight: weight, bias: bias, padding: k / 2, groups: groups) } }
    }
}

/// conv2d forward + backward (input, weight and bias gradients): 3× the forward's FLOPs.
func conv2dTrainingBenchmark(_ name: String, cin: Int, cout: Int, h: Int, w: Int, kernel k: Int, groups: Int = 1) -> Benchmark {
    let macs = Double(cout * h * w) * Double(cin / groups * k * k)
    return Benchmark(name, flops: 6 * macs) {
        let x = benchTensor([1, cin, h, w], seed: 3)
        let weight = benchTensor([cout, cin / groups, k, k], seed: 4), bias = benchTensor([cout], seed: 5)
        x.requiresGrad = true; weight.requiresGrad = true; bias.requiresGrad = true
        let seed = benchTensor([1, cout, h, w], seed: 6)
        return {
            Tensor.conv2d(x, weight: weight, bias: bias, padding: k / 2, groups: groups).backward(seed)
            x.zeroGrad(); weight.zeroGrad(); bias.zeroGrad()
        }
    }
}

/// Restormer's channel LayerNorm (WithBias) forward + backward (input, weight and bias gradients) on
/// `[n, c, side, side]`: reads x, writes y; reads x and g twice, writes dx.
func layerNormTrainingBenchmark(batch n: Int, channels c: Int, side: Int) -> Benchmark {
    Benchmark("layernorm channels fwd+bwd \(n)x\(c)x\(side)x\(side)", bytes: 4 * 7 * Double(n * c * side * side)) {
        let x = benchTensor([n, c, side, side], seed: 41)
        let w = benchTensor([c], seed: 42), b = benchTensor([c], seed: 43), g = benchTensor([n, c, side, side], seed: 44)
        x.requiresGrad = true; w.requiresGrad = true; b.requiresGrad = true
        return {
            x.layerNormChannels(weight: w, bias: b).backward(g)
            x.zeroGrad(); w.zeroGrad(); b.zeroGrad()
        }
    }
}

/// Row softmax forward + backward over `[rows, length]`.
func softmaxTrainingBenchmark(rows: Int, length: Int) -> Benchmark {
    Benchmark("softmax rows fwd+bwd \(rows)x\(length)", bytes: 4 * 5 * Double(rows * length)) {
        let x = benchTensor([rows, length], seed: 45), g = benchTensor([rows, length], seed: 46)
        x.requiresGrad = true
        return { x.softmax().backward(g); x.zeroGrad() }
    }
}

/// Element-wise GELU forward + backward on `count` values.
func geluTrainingBenchmark(count: Int) -> Benchmark {
    Benchmark("gelu fwd+bwd \(count / 1_048_576)Mi elements", bytes: 4 * 5 * Double(count)) {
        let x = benchTensor([count], seed: 47), g = benchTensor([count], seed: 48)
        x.requiresGrad = true
        return { x.gelu().backward(g); x.zeroGrad() }
    }
}

/// Depthwise k×k forward + backward at batch `n` (the training path of GDFN's and MSFN's depthwise convolutions).
func depthwiseTrainingBenchmark(batch n: Int, channels c: Int, side: Int, kernel k: Int) -> Benchmark {
    let macs = Double(n * c * side * side * k * k)
    return Benchmark("depthwise \(k)x\(k) \(n)x\(c)x\(side)x\(side) fwd+bwd", flops: 6 * macs) {
        let x = benchTensor([n, c, side, side], seed: 49)
        let weight = benchTensor([c, 1, k, k], seed: 50), bias = benchTensor([c], seed: 51)
        x.requiresGrad = true; weight.requiresGrad = true; bias.requiresGrad = true
        let seed = benchTensor([n, c, side, side], seed: 52)
        return {
            Tensor.conv2d(x, weight: weight, bias: bias, padding: k / 2, groups: c).backward(seed)
            x.zeroGrad(); weight.zeroGrad(); bias.zeroGrad()
        }
    }
}

/// One Adam step over `count` parameters in tensors of 1 Mi values (reads p, g, m, v; writes p, m, v).
func adamBenchmark(count: Int) -> Benchmark {
    Benchmark("adam step \(count / 1_048_576)Mi parameters", bytes: 4 * 7 * Double(count)) {
        let parameters = (0..<(count / 1_048_576)).map { i -> Tensor in
            let p = benchTensor([1_048_576], seed: 60 + UInt64(i))
            p.requiresGrad = true
            p.grad = benchTensor([1_048_576], seed: 90 + UInt64(i))
            return p
        }
        let optimizer = Adam(parameters: parameters, lr: 1e-4)
        return { optimizer.step() }
    }
}

/// The kernel benchmarks, in table order.
/// The kernel benchmarks, in table order.
let kernelBenchmarks: [Benchmark] = [
    sgemmBenchmark("sgemm 2048x2048x2048", m: 2048, n: 2048, k: 2048),
    sgemmBenchmark("sgemm 48x65536x432 (conv 3x3 48->48 @256^2)", m: 48, n: 65536, k: 432),
    sgemmBenchmark("sgemm 144x65536x48 (conv 1x1 48->144 @256^2)", m: 144, n: 65536, k: 48),
    conv2dBenchmark("conv2d 3x3 48->48 1x48x256x256", cin: 48, cout: 48, h: 256, w: 256, kernel: 3),
    conv2dBenchmark("conv2d 1x1 48->144 1x48x256x256", cin: 48, cout: 144, h: 256, w: 256, kernel: 1),
    conv2dBenchmark("depthwise 3x3 1x144x256x256", cin: 144, cout: 144, h: 256, w: 256, kernel: 3, groups: 144),
    conv2dBenchmark("depthwise 5x5 1x144x256x256", cin: 144, cout: 144, h: 256, w: 256, kernel: 5, groups: 144),
    conv2dTrainingBenchmark("conv2d 3x3 48->48 256^2 fwd+bwd", cin: 48, cout: 48, h: 256, w: 256, kernel: 3),
    conv2dTrainingBenchmark("depthwise 3x3 144 256^2 fwd+bwd", cin: 144, cout: 144, h: 256, w: 256, kernel: 3, groups: 144),
    // The row kernels of CSKDKernels (portable / AVX2 + FMA / AVX-512), on their training paths.
    depthwiseTrainingBenchmark(batch: 8, channels: 96, side: 128, kernel: 3),
    depthwiseTrainingBenchmark(batch: 8, channels: 96, side: 128, kernel: 5),
    layerNormTrainingBenchmark(batch: 8, channels: 48, side: 128),
    softmaxTrainingBenchmark(rows: 4096, length: 4096),
    geluTrainingBenchmark(count: 16 << 20),
    adamBenchmark(count: 16 << 20),
]
