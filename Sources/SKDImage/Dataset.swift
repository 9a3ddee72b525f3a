// What the sampler and validation iterator need from a dataset, the errors datasets raise, and folder listing.

import Foundation
import SKDTensor

/// A degraded/clean image pair. `input` is what the network sees (float samples for synthetic degradations,
/// 8-bit for real pairs), `target` the clean image (8-bit). Both are RGB and of equal size.
public struct ImagePair: Sendable {
    /// A name identifying the pair in the dataset (the input file's path relative to the dataset root).
    public var name: String
    /// The degraded image.
    public var input: Image
    /// The clean image.
    public var target: Image

    /// A pair named `name`.
    public init(name: String, input: Image, target: Image) {
        self.name = name
        self.input = input
        self.target = target
    }
}

/// A dataset of degraded/clean pairs that can be read whole (validation) or as random patches (training).
///
/// Implementations draw every random choice (patch position, synthetic degradation) from the generator passed
/// in, so the sampler can reproduce any sample from the seed it derives for it.
public protocol PairedImageSource: Sendable {
    /// The number of pairs.
    var count: Int { get }
    /// The name of pair `index` (for logs and error messages).
    func name(at index: Int) -> String
    /// Pair `index` at full size.
    func pair(at index: Int, using rng: inout SKDRandom) throws -> ImagePair
    /// A `size`×`size` patch of pair `index` at a random position, the same position in input and target.
    func patch(at index: Int, size: Int, using rng: inout SKDRandom) throws -> ImagePair
}

/// A problem with a dataset folder or one of its pairs; every case names the files or folder concerned.
public enum DatasetError: Error, Equatable, CustomStringConvertible {
    /// The folder does not exist or is not a folder.
    case folderNotFound(URL)
    /// The folder holds no PNG or JPEG files.
    case noImages(URL)
    /// None of the known layouts fits the folder; `contents` lists what is in it.
    case unknownLayout(URL, contents: [String])
    /// Some inputs have no target or some targets no input (names relative to `URL`).
    case unmatchedFiles(URL, inputsWithoutTarget: [String], targetsWithoutInput: [String])
    /// Several files in one folder share a name once the extension is removed.
    case duplicateNames(URL, names: [String])
    /// The two images of a pair differ in size.
    case sizeMismatch(input: URL, target: URL, inputSize: String, targetSize: String)
    /// An image is smaller than the requested training patch.
    case imageTooSmall(URL, width: Int, height: Int, patch: Int)

    /// A one-line explanation naming the files or folder.
    public var description: String {
        func list(_ names: [String]) -> String {
            names.count <= 10 ? names.joined(separator: ", ")
                : names.prefix(10).joined(separator: ", ") + " and \(names.count - 10) more"
        }
        switch self {
        case .folderNotFound(let url): return "\(url.path): no such folder"
        case .noImages(let url): return "\(url.path): no PNG or JPEG images"
        case .unknownLayout(let url, let contents):
            return "\(url.path): not a known dataset layout (expected input/+target/, blur/+sharp/ or SIDD *_NOISY_*/*_GT_* files); contains: \(list(contents))"
        case .unmatchedFiles(let url, let inputs, let targets):
            var parts = [String]()
            if !inputs.isEmpty { parts.append("\(inputs.count) inputs without target: \(list(inputs))") }
            if !targets.isEmpty { parts.append("\(targets.count) targets without input: \(list(targets))") }
            return "\(url.path): unpaired files: " + parts.joined(separator: "; ")
        case .duplicateNames(let url, let names): return "\(url.path): several files share the names \(list(names))"
        case .sizeMismatch(let input, let target, let a, let b):
            return "pair \(input.path) (\(a)) and \(target.path) (\(b)) differ in size"
        case .imageTooSmall(let url, let w, let h, let p):
            return "\(url.path): \(w)x\(h) is smaller than the \(p)x\(p) training patch"
        }
    }
}

extension DatasetError: LocalizedError {
    /// The same text as `description`, for `localizedDescription`.
    public var errorDescription: String? { description }
}

// MARK: - Helpers shared by the datasets

enum DatasetFiles {
    /// Whether `url` names a PNG or JPEG by its extension.
    static func isImage(_ url: URL) -> Bool { ImageFormat(pathExtension: url.pathExtension) != nil }

    /// Whether `url` is an existing folder.
    static func isFolder(_ url: URL) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    /// Orders names as people number files: "2.png" before "10.png".
    static func naturalOrder(_ a: String, _ b: String) -> Bool {
        a.compare(b, options: [.numeric]) == .orderedAscending
    }

    /// The visible entries of `folder`, in natural order.
    static func entries(of folder: URL) throws -> [URL] {
        guard isFolder(folder) else { throw DatasetError.folderNotFound(folder) }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted(by: naturalOrder).map { folder.appendingPathComponent($0) }
    }

    /// The PNG/JPEG files directly in `folder` (hidden files, such as interrupted atomic writes, are skipped).
    static func images(in folder: URL) throws -> [URL] {
        try entries(of: folder).filter { isImage($0) && !isFolder($0) }
    }

    /// The PNG/JPEG files anywhere below `folder`, as paths relative to it, in natural order.
    static func imagesRecursively(in folder: URL) throws -> [String] {
        guard isFolder(folder) else { throw DatasetError.folderNotFound(folder) }
        let enumerator = FileManager.default.enumerator(atPath: folder.path)
        var found = [String]()
        while let relative = enumerator?.nextObject() as? String {
            let last = (relative as NSString).lastPathComponent
            if last.hasPrefix(".") { continue }
            let url = folder.appendingPathComponent(relative)
            if isImage(url) && !isFolder(url) { found.append(relative) }
        }
        return found.sorted(by: naturalOrder)
    }

    /// Loads `url` as RGB, mapping errors unchanged.
    static func load(_ url: URL) throws -> Image { try Image(contentsOf: url, channels: .rgb) }

    /// A random top-left corner for a `size`×`size` patch of a `width`×`height` image.
    static func randomCorner(width: Int, height: Int, size: Int, using rng: inout SKDRandom) -> (x: Int, y: Int) {
        (rng.int(below: width - size + 1), rng.int(below: height - size + 1))
    }
}

/// Independent generator seeds for the (seed, stream, index) triples the samplers use, so a sample's randomness
/// depends only on them, not on the order or thread that produced it.
public enum SeedDerivation {
    @inline(__always)
    static func mix(_ value: UInt64) -> UInt64 {
        var x = value &+ 0x9E37_79B9_7F4A_7C15
        x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        return x ^ (x >> 31)
    }

    /// The seed of item `index` of random stream `stream` under the run seed `seed`.
    public static func seed(_ seed: UInt64, stream: UInt64, index: Int) -> UInt64 {
        mix(seed ^ mix(stream ^ mix(UInt64(bitPattern: Int64(index)))))
    }

    /// A generator for item `index` of `stream` under `seed`.
    public static func generator(_ seed: UInt64, stream: UInt64, index: Int) -> SKDRandom {
        SKDRandom(seed: self.seed(seed, stream: stream, index: index))
    }
}
