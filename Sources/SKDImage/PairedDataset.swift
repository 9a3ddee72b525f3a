// Real degraded/clean pairs in the folder layouts of the official repositories.

import Foundation
import SKDTensor

/// Degraded/clean image pairs stored as files, matched by name.
///
/// Layouts (see Docs/data.md):
/// - `.inputTarget`: `root/input/` and `root/target/` with equal file names (Restormer/DRSformer's prepared
///   deraining sets Rain13K/Rain14000, Test1200, Rain200H, and their GoPro/HIDE/SIDD test folders). Inputs named
///   `<t>_<k>` may share the target `<t>` (Rain14000's 14 rainy versions of one clean image).
/// - `.blurSharp`: `root/blur/` and `root/sharp/`, or one such pair per sequence folder
///   (`root/GOPR0384_11_00/blur/…`, the GoPro/HIDE release layout).
/// - `.sidd`: `*_NOISY_*` files anywhere below `root`, each with the `*_GT_*` file of the same name beside it
///   (SIDD-Medium `Data/0001_001_S6_…/0001_NOISY_SRGB_010.PNG` + `0001_GT_SRGB_010.PNG`).
public struct PairedDataset: PairedImageSource {
    /// A folder layout.
    public enum Layout: String, Equatable, Sendable, CaseIterable {
        /// `input/` + `target/`.
        case inputTarget
        /// `blur/` + `sharp/`, directly or per sequence folder.
        case blurSharp
        /// `*_NOISY_*` / `*_GT_*` files side by side.
        case sidd
    }

    /// One pair of files.
    public struct Entry: Equatable, Sendable {
        /// The input's path relative to the dataset root.
        public var name: String
        /// The degraded image.
        public var input: URL
        /// The clean image.
        public var target: URL
    }

    /// The dataset folder.
    public let root: URL
    /// The layout found or given.
    public let layout: Layout
    /// The pairs, in natural name order.
    public let entries: [Entry]

    /// Lists and matches the pairs under `root`.
    ///
    /// - Parameter layout: the layout, or `nil` to detect it (input/target, then blur/sharp, then SIDD names).
    /// - Throws: `DatasetError` for a missing folder, an unknown layout, no images, or unmatched names (listing
    ///   them).
    public init(root: URL, layout: Layout? = nil) throws {
        guard DatasetFiles.isFolder(root) else { throw DatasetError.folderNotFound(root) }
        let chosen = try layout ?? PairedDataset.detectLayout(root)
        var entries: [Entry]
        switch chosen {
        case .inputTarget:
            entries = try PairedDataset.match(root: root, inputFolder: "input", targetFolder: "target", prefix: "")
        case .blurSharp:
            if DatasetFiles.isFolder(root.appendingPathComponent("blur")) {
                entries = try PairedDataset.match(root: root, inputFolder: "blur", targetFolder: "sharp", prefix: "")
            } else {
                entries = []
                for sequence in try DatasetFiles.entries(of: root) where DatasetFiles.isFolder(sequence.appendingPathComponent("blur")) {
                    entries += try PairedDataset.match(root: sequence, inputFolder: "blur", targetFolder: "sharp",
                                                       prefix: sequence.lastPathComponent + "/")
                }
            }
        case .sidd:
            entries = try PairedDataset.matchSIDD(root: root)
        }
        if entries.isEmpty { throw DatasetError.noImages(root) }
        self.root = root
        self.layout = chosen
        self.entries = entries
    }

    /// The layout of `root`, judged by its sub-folders and file names.
    public static func detectLayout(_ root: URL) throws -> Layout {
        func has(_ name: String, in folder: URL = root) -> Bool {
            DatasetFiles.isFolder(folder.appendingPathComponent(name))
        }
        if has("input") && has("target") { return .inputTarget }
        if has("blur") && has("sharp") { return .blurSharp }
        let children = try DatasetFiles.entries(of: root)
        if children.contains(where: { has("blur", in: $0) && has("sharp", in: $0) }) { return .blurSharp }
        if try DatasetFiles.imagesRecursively(in: root).contains(where: { $0.contains("_NOISY_") }) { return .sidd }
        throw DatasetError.unknownLayout(root, contents: children.map { $0.lastPathComponent })
    }

    /// Pairs the images of `root/inputFolder` with those of `root/targetFolder` by name without extension; an
    /// input `<t>_<k>` without a target of its own name takes the target `<t>`.
    static func match(root: URL, inputFolder: String, targetFolder: String, prefix: String) throws -> [Entry] {
        let inputDirectory = root.appendingPathComponent(inputFolder)
        let targetDirectory = root.appendingPathComponent(targetFolder)
        let inputs = try DatasetFiles.images(in: inputDirectory)
        let targets = try DatasetFiles.images(in: targetDirectory)
        func stem(_ url: URL) -> String { url.deletingPathExtension().lastPathComponent }
        var targetByStem = [String: URL]()
        var duplicates = [String]()
        for t in targets {
            if targetByStem[stem(t)] != nil { duplicates.append(targetFolder + "/" + stem(t)) }
            targetByStem[stem(t)] = t
        }
        var seenInputs = Set<String>()
        for i in inputs where !seenInputs.insert(stem(i)).inserted { duplicates.append(inputFolder + "/" + stem(i)) }
        if !duplicates.isEmpty { throw DatasetError.duplicateNames(root, names: duplicates) }

        var entries = [Entry]()
        var used = Set<String>()
        var orphans = [String]()
        for input in inputs {
            var key = stem(input)
            if targetByStem[key] == nil, let underscore = key.lastIndex(of: "_"),
               !key[key.index(after: underscore)...].isEmpty,
               key[key.index(after: underscore)...].allSatisfy(\.isNumber) {
                key = String(key[..<underscore])
            }
            guard let target = targetByStem[key] else {
                orphans.append(prefix + inputFolder + "/" + input.lastPathComponent)
                continue
            }
            used.insert(key)
            entries.append(Entry(name: prefix + input.lastPathComponent, input: input, target: target))
        }
        let unusedTargets = targets.filter { !used.contains(stem($0)) }.map { prefix + targetFolder + "/" + $0.lastPathComponent }
        if !orphans.isEmpty || !unusedTargets.isEmpty {
            throw DatasetError.unmatchedFiles(root, inputsWithoutTarget: orphans, targetsWithoutInput: unusedTargets)
        }
        return entries
    }

    /// Pairs every `*_NOISY_*` image below `root` with the `*_GT_*` image of the same name in its folder.
    static func matchSIDD(root: URL) throws -> [Entry] {
        let files = try DatasetFiles.imagesRecursively(in: root)
        let all = Set(files)
        var entries = [Entry]()
        var orphans = [String]()
        var used = Set<String>()
        for noisy in files {
            let name = (noisy as NSString).lastPathComponent
            guard name.contains("_NOISY_") else { continue }
            let folder = (noisy as NSString).deletingLastPathComponent
            let gtName = name.replacingOccurrences(of: "_NOISY_", with: "_GT_")
            let gt = folder.isEmpty ? gtName : folder + "/" + gtName
            if all.contains(gt) {
                used.insert(gt)
                entries.append(Entry(name: noisy, input: root.appendingPathComponent(noisy),
                                     target: root.appendingPathComponent(gt)))
            } else {
                orphans.append(noisy)
            }
        }
        let unused = files.filter { ($0 as NSString).lastPathComponent.contains("_GT_") && !used.contains($0) }
        if !orphans.isEmpty || !unused.isEmpty {
            throw DatasetError.unmatchedFiles(root, inputsWithoutTarget: orphans, targetsWithoutInput: unused)
        }
        return entries
    }

    // MARK: PairedImageSource

    /// The number of pairs.
    public var count: Int { entries.count }

    /// The name of pair `index` (see `Entry.name`).
    public func name(at index: Int) -> String { entries[index].name }

    /// Pair `index` at full size, as RGB; `rng` is not used (real pairs have no synthetic randomness).
    public func pair(at index: Int, using rng: inout SKDRandom) throws -> ImagePair {
        let entry = entries[index]
        let input = try DatasetFiles.load(entry.input), target = try DatasetFiles.load(entry.target)
        guard input.width == target.width && input.height == target.height else {
            throw DatasetError.sizeMismatch(input: entry.input, target: entry.target,
                                            inputSize: "\(input.width)x\(input.height)",
                                            targetSize: "\(target.width)x\(target.height)")
        }
        return ImagePair(name: entry.name, input: input, target: target)
    }

    /// A random `size`×`size` patch at the same position in input and target; the position comes from `rng`.
    public func patch(at index: Int, size: Int, using rng: inout SKDRandom) throws -> ImagePair {
        precondition(size > 0, "PairedDataset.patch: size \(size) must be positive")
        let whole = try pair(at: index, using: &rng)
        guard whole.input.width >= size && whole.input.height >= size else {
            throw DatasetError.imageTooSmall(entries[index].input, width: whole.input.width,
                                             height: whole.input.height, patch: size)
        }
        let (x, y) = DatasetFiles.randomCorner(width: whole.input.width, height: whole.input.height, size: size, using: &rng)
        return ImagePair(name: whole.name,
                         input: whole.input.cropped(x: x, y: y, width: size, height: size),
                         target: whole.target.cropped(x: x, y: y, width: size, height: size))
    }
}
