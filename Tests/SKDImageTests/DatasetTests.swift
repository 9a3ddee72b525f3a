import Foundation
import SKDImage
import SKDTensor
import XCTest

final class DatasetTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws { folder = try makeScratchFolder("dataset") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    /// Writes small images at the given paths below `root` (folders created); image content depends on the seed.
    private func populate(_ root: URL, _ paths: [String], width: Int = 20, height: Int = 16) throws {
        for (i, path) in paths.enumerated() {
            let url = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try noiseImage(width: width, height: height, seed: UInt64(i + 1)).write(to: url)
        }
    }

    func testInputTargetLayoutMatchesByNameInNaturalOrder() throws {
        try populate(folder, ["input/10.png", "input/2.png", "input/1.png", "target/1.png", "target/10.png", "target/2.png"])
        let data = try PairedDataset(root: folder)
        XCTAssertEqual(data.layout, .inputTarget)
        XCTAssertEqual(data.entries.map(\.name), ["1.png", "2.png", "10.png"])
        XCTAssertEqual(data.entries.map { $0.target.lastPathComponent }, ["1.png", "2.png", "10.png"])
        var rng = SKDRandom(seed: 1)
        let pair = try data.pair(at: 1, using: &rng)
        XCTAssertEqual(pair.input, try Image(contentsOf: folder.appendingPathComponent("input/2.png")))
        XCTAssertEqual(pair.target, try Image(contentsOf: folder.appendingPathComponent("target/2.png")))
    }

    func testRain14000ManyInputsShareOneTarget() throws {
        try populate(folder, ["input/1_1.jpg", "input/1_2.jpg", "input/2_1.jpg", "target/1.jpg", "target/2.jpg"])
        let data = try PairedDataset(root: folder, layout: .inputTarget)
        XCTAssertEqual(data.entries.map(\.name), ["1_1.jpg", "1_2.jpg", "2_1.jpg"])
        XCTAssertEqual(data.entries.map { $0.target.lastPathComponent }, ["1.jpg", "1.jpg", "2.jpg"])
    }

    func testMismatchesAreReportedWithTheirNames() throws {
        try populate(folder, ["input/1.png", "input/3.png", "target/1.png", "target/4.png", "target/5.png"])
        XCTAssertThrowsError(try PairedDataset(root: folder)) { error in
            guard case DatasetError.unmatchedFiles(_, let inputs, let targets) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(inputs, ["input/3.png"])
            XCTAssertEqual(targets, ["target/4.png", "target/5.png"])
            XCTAssertTrue("\(error)".contains("input/3.png") && "\(error)".contains("target/5.png"), "\(error)")
        }
    }

    func testGoProSequencesAndDirectBlurSharp() throws {
        let gopro = folder.appendingPathComponent("GoPro/test")
        try populate(gopro, ["GOPR0384_11_00/blur/000001.png", "GOPR0384_11_00/sharp/000001.png",
                             "GOPR0384_11_00/blur/000002.png", "GOPR0384_11_00/sharp/000002.png",
                             "GOPR0410_11_00/blur/000001.png", "GOPR0410_11_00/sharp/000001.png"])
        let data = try PairedDataset(root: gopro)
        XCTAssertEqual(data.layout, .blurSharp)
        XCTAssertEqual(data.entries.map(\.name),
                       ["GOPR0384_11_00/000001.png", "GOPR0384_11_00/000002.png", "GOPR0410_11_00/000001.png"])
        XCTAssertEqual(data.entries[2].target.path, gopro.appendingPathComponent("GOPR0410_11_00/sharp/000001.png").path)

        let hide = folder.appendingPathComponent("HIDE")
        try populate(hide, ["blur/a.png", "sharp/a.png"])
        XCTAssertEqual(try PairedDataset(root: hide).entries.map(\.name), ["a.png"])
    }

    func testSIDDNoisyAndGroundTruthFiles() throws {
        let sidd = folder.appendingPathComponent("SIDD_Medium_Srgb/Data")
        try populate(sidd, ["0001_001_S6_00100_00060_3200_L/0001_NOISY_SRGB_010.PNG",
                            "0001_001_S6_00100_00060_3200_L/0001_GT_SRGB_010.PNG",
                            "0001_001_S6_00100_00060_3200_L/0001_NOISY_SRGB_011.PNG",
                            "0001_001_S6_00100_00060_3200_L/0001_GT_SRGB_011.PNG",
                            "0002_001_S6_00100_00020_3200_N/0002_NOISY_SRGB_010.PNG",
                            "0002_001_S6_00100_00020_3200_N/0002_GT_SRGB_010.PNG"])
        let data = try PairedDataset(root: sidd)
        XCTAssertEqual(data.layout, .sidd)
        XCTAssertEqual(data.count, 3)
        XCTAssertEqual(data.entries[1].target.lastPathComponent, "0001_GT_SRGB_011.PNG")
        // A ground truth without its noisy partner is reported.
        try populate(sidd, ["0003_x/0003_GT_SRGB_010.PNG"])
        XCTAssertThrowsError(try PairedDataset(root: sidd)) {
            guard case DatasetError.unmatchedFiles(_, let inputs, let targets) = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual(inputs, [])
            XCTAssertEqual(targets, ["0003_x/0003_GT_SRGB_010.PNG"])
        }
    }

    func testFolderProblemsAreNamed() throws {
        let missing = folder.appendingPathComponent("nope")
        XCTAssertThrowsError(try PairedDataset(root: missing)) { XCTAssertEqual($0 as? DatasetError, .folderNotFound(missing)) }
        XCTAssertThrowsError(try CleanDataset(folder: missing, degradation: GaussianNoise(sigma: 15))) {
            XCTAssertEqual($0 as? DatasetError, .folderNotFound(missing))
        }
        try populate(folder, ["odd/x.png", "stuff/y.png"])
        XCTAssertThrowsError(try PairedDataset(root: folder)) {
            guard case DatasetError.unknownLayout(_, let contents) = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual(contents, ["odd", "stuff"])
        }
        XCTAssertThrowsError(try CleanDataset(folder: folder, degradation: GaussianNoise(sigma: 15))) {
            XCTAssertEqual($0 as? DatasetError, .noImages(folder))
        }
    }

    func testSizeMismatchAndTooSmallImagesThrowWithTheFiles() throws {
        let root = folder.appendingPathComponent("pairs")
        try populate(root, ["input/a.png"], width: 20, height: 16)
        try populate(root, ["target/a.png"], width: 21, height: 16)
        let data = try PairedDataset(root: root)
        var rng = SKDRandom(seed: 1)
        XCTAssertThrowsError(try data.pair(at: 0, using: &rng)) {
            guard case DatasetError.sizeMismatch(let input, let target, _, _) = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual(input.lastPathComponent, "a.png")
            XCTAssertTrue(target.path.hasSuffix("target/a.png"))
        }
        let clean = try CleanDataset(folder: root.appendingPathComponent("input"), degradation: GaussianNoise(sigma: 5))
        XCTAssertThrowsError(try clean.patch(at: 0, size: 17, using: &rng)) {
            guard case DatasetError.imageTooSmall(let url, 20, 16, 17) = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual(url.lastPathComponent, "a.png")
        }
    }

    func testCleanPatchesAreDegradedWithRealContext() throws {
        // With the margin, a patch's degradation equals that of the whole image wherever the kernel stays inside
        // the image.
        let big = gradientImage(width: 120, height: 90, seed: 3)
        let url = folder.appendingPathComponent("clean/big.png")
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try big.write(to: url)
        let blur = MotionBlur(length: 9...9, angle: 60...60)
        let data = try CleanDataset(folder: url.deletingLastPathComponent(), degradation: blur)
        var whole = SKDRandom(seed: 0)
        let blurred = blur.degrade(big, using: &whole).floats
        var checked = 0
        for seed in 0..<20 {
            var rng = SKDRandom(seed: UInt64(seed))
            let patch = try data.patch(at: 0, size: 24, using: &rng)
            XCTAssertEqual(patch.target.width, 24)
            // Locate the patch by its clean content.
            var corner: (Int, Int)? = nil
            search: for y in 0...(90 - 24) {
                for x in 0...(120 - 24) where big.cropped(x: x, y: y, width: 24, height: 24) == patch.target {
                    corner = (x, y)
                    break search
                }
            }
            guard let (x0, y0) = corner else { return XCTFail("patch not found in the clean image") }
            let r = blur.margin
            for y in 0..<24 {
                for x in 0..<24 where x0 + x >= r && x0 + x < 120 - r && y0 + y >= r && y0 + y < 90 - r {
                    for c in 0..<3 {
                        XCTAssertEqual(patch.input.floats[(y * 24 + x) * 3 + c], blurred[((y0 + y) * 120 + x0 + x) * 3 + c], accuracy: 1e-5)
                        checked += 1
                    }
                }
            }
        }
        XCTAssertGreaterThan(checked, 10_000)
    }

    // MARK: The shared sample folders

    func testRain200HSamplesGiveRainyCleanPairs() throws {
        let root = try referenceFile("data/rain200h_samples")
        let data = try PairedDataset(root: root)
        XCTAssertEqual(data.layout, .inputTarget)
        XCTAssertEqual(data.entries.map(\.name), ["1.png", "2.png"])
        var iterator = ValidationIterator(source: data, range: .zeroToOne)
        var psnrs = [Double]()
        while let sample = try iterator.next() {
            XCTAssertEqual(sample.input.shape, sample.target.shape)
            XCTAssertEqual(sample.input.shape[1], 3)
            psnrs.append(Metrics.psnr(sample.inputImage, sample.targetImage))
        }
        // The same files as the golden metrics pairs.
        let golden = try JSONSerialization.jsonObject(with: Data(contentsOf: try referenceFile("golden/metrics.json"))) as! [String: Any]
        let pairs = golden["pairs"] as! [[String: Any]]
        XCTAssertEqual(psnrs[0], pairs[0]["psnr_rgb"] as! Double, accuracy: 1e-9)
        XCTAssertEqual(psnrs[1], pairs[1]["psnr_rgb"] as! Double, accuracy: 1e-9)
    }

    func testCBSD68GivesNoisyCleanBatches() throws {
        let root = try referenceFile("data/cbsd68")
        let data = try CleanDataset(folder: root, degradation: GaussianNoise(sigma: 25))
        XCTAssertEqual(data.count, 68)
        let sampler = TrainingSampler(source: data, batchSize: 4, patchSize: 128, seed: 42, range: .minusOneToOne)
        defer { sampler.stop() }
        for _ in 0..<3 {
            let batch = try sampler.next()
            XCTAssertEqual(batch.input.shape, [4, 3, 128, 128])
            XCTAssertEqual(batch.target.shape, [4, 3, 128, 128])
            let t = batch.target.values, n = batch.input.values
            XCTAssertGreaterThanOrEqual(t.min()!, -1)
            XCTAssertLessThanOrEqual(t.max()!, 1)
            // In [−1, 1] the noise standard deviation doubles: 2 · 25/255.
            let residual = zip(n, t).map { Double($0 - $1) }
            let std = (residual.reduce(0) { $0 + $1 * $1 } / Double(residual.count)).squareRoot()
            XCTAssertEqual(std, 2 * 25 / 255, accuracy: 0.004)
        }
        // Whole-image validation with fixed noise: noisy PSNR near the usual ≈20.2–20.6 dB for σ = 25.
        let validation = ValidationIterator(source: data, range: .minusOneToOne, seed: 0)
        let first = try validation.sample(at: 0), again = try validation.sample(at: 0)
        XCTAssertEqual(first.input.values, again.input.values, "validation noise is fixed by the seed")
        let psnr = Metrics.psnr(first.input, first.target, range: .minusOneToOne)
        XCTAssertEqual(psnr, 20.4, accuracy: 0.6)
    }

    /// Prints the PNG decode throughput over CBSD68 (no timing assertion: the machine's load varies).
    func testReportCBSD68DecodeThroughput() throws {
        let root = try referenceFile("data/cbsd68")
        let files = try FileManager.default.contentsOfDirectory(atPath: root.path).filter { $0.hasSuffix(".png") }.sorted()
        XCTAssertEqual(files.count, 68)
        let urls = files.map { root.appendingPathComponent($0) }
        let fileBytes = try 2 * urls.reduce(0) { $0 + (try FileManager.default.attributesOfItem(atPath: $1.path)[.size] as! Int) }
        var pixelBytes = 0
        let start = Date()
        for _ in 0..<2 {
            for url in urls { pixelBytes += try Image(contentsOf: url).sampleCount }
        }
        let seconds = Date().timeIntervalSince(start)
        print(String(format: "CBSD68 decode: %d images in %.3f s, %.1f MB/s of PNG files, %.1f MB/s of decoded pixels",
                     2 * files.count, seconds, Double(fileBytes) / seconds / 1e6, Double(pixelBytes) / seconds / 1e6))
    }
}
