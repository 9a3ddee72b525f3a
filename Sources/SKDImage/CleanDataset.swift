// Clean images with a synthetic degradation applied on the fly (denoising on CBSD68/DIV2K-style folders,
// synthetic rain, synthetic motion blur).

import Foundation
import SKDTensor

/// A folder of clean images whose degraded inputs are synthesised when a pair is requested.
///
/// The degradation's randomness comes from the generator passed to `pair`/`patch`, so the same generator state
/// gives the same degraded image. For patches only the patch (plus the degradation's `margin` on each side, where
/// the image has it) is degraded, which is much cheaper than degrading the whole image.
public struct CleanDataset: PairedImageSource {
    /// The folder the images were listed from.
    public let folder: URL
    /// The clean images, in natural name order.
    public let files: [URL]
    /// The synthetic degradation.
    public let degradation: any Degradation
    /// The names of `files` relative to `folder`.
    private let names: [String]

    /// The PNG/JPEG images in `folder` (and, if `recursive`, below it), degraded by `degradation`.
    ///
    /// - Throws: `DatasetError.folderNotFound` or `.noImages`.
    public init(folder: URL, degradation: any Degradation, recursive: Bool = false) throws {
        let names = recursive ? try DatasetFiles.imagesRecursively(in: folder)
            : try DatasetFiles.images(in: folder).map { $0.lastPathComponent }
        if names.isEmpty { throw DatasetError.noImages(folder) }
        self.folder = folder
        self.names = names
        self.files = names.map { folder.appendingPathComponent($0) }
        self.degradation = degradation
    }

    /// The number of clean images.
    public var count: Int { files.count }

    /// The file name of image `index`, relative to `folder`.
    public func name(at index: Int) -> String { names[index] }

    /// Image `index` and its degradation, at full size; `rng` drives the degradation.
    public func pair(at index: Int, using rng: inout SKDRandom) throws -> ImagePair {
        let clean = try DatasetFiles.load(files[index])
        return ImagePair(name: names[index], input: degradation.degrade(clean, using: &rng), target: clean)
    }

    /// A random `size`×`size` patch of image `index` and its degradation (degraded with `margin` context).
    public func patch(at index: Int, size: Int, using rng: inout SKDRandom) throws -> ImagePair {
        precondition(size > 0, "CleanDataset.patch: size \(size) must be positive")
        let clean = try DatasetFiles.load(files[index])
        guard clean.width >= size && clean.height >= size else {
            throw DatasetError.imageTooSmall(files[index], width: clean.width, height: clean.height, patch: size)
        }
        let (x, y) = DatasetFiles.randomCorner(width: clean.width, height: clean.height, size: size, using: &rng)
        let target = clean.cropped(x: x, y: y, width: size, height: size)
        // Degrade the patch with context around it, then keep the centre: streaks and blur near the patch edge
        // then come from real neighbouring pixels rather than a mirrored border.
        let m = degradation.margin
        let x0 = max(x - m, 0), y0 = max(y - m, 0)
        let x1 = min(x + size + m, clean.width), y1 = min(y + size + m, clean.height)
        let context = clean.cropped(x: x0, y: y0, width: x1 - x0, height: y1 - y0)
        let degraded = degradation.degrade(context, using: &rng)
        let input = degraded.cropped(x: x - x0, y: y - y0, width: size, height: size)
        return ImagePair(name: names[index], input: input, target: target)
    }
}
