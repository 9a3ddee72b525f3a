// The pixel size of a PNG or JPEG file from its header, without decoding the image: the run checks read every
// file of a dataset this way before any work. The header is parsed by libpng/libjpeg behind the guarded C shim
// (CImageShim), the same code that decodes the images, so a header the probe accepts is one the decoder reads.

import Foundation

/// The pixel size stated in a PNG or JPEG header, read without decoding the image.
public enum ImageHeader {
    /// The first read; JPEGs whose frame header comes later (EXIF thumbnails, large ICC profiles) are read further,
    /// doubling, up to the whole file.
    static let firstRead = 1 << 16

    /// The width and height `url`'s header states.
    ///
    /// - Throws: `ImageError` naming the file when it is missing, empty, not a PNG/JPEG, its header is cut short or
    ///   corrupt, or it states a size beyond the decoder's limits (65535 per side, 2^28 pixels).
    public static func size(of url: URL) throws -> (width: Int, height: Int) {
        guard let handle = FileHandle(forReadingAtPath: url.path) else {
            throw FileManager.default.fileExists(atPath: url.path) ? ImageError.unreadable(url, reason: "permission denied or not a file")
                : ImageError.fileNotFound(url)
        }
        defer { try? handle.close() }
        var bytes = Data()
        do { bytes = try handle.read(upToCount: firstRead) ?? Data() } catch {
            throw ImageError.unreadable(url, reason: error.localizedDescription)
        }
        if bytes.isEmpty { throw ImageError.emptyFile(url) }
        let format = bytes.withUnsafeBytes { ImageFormat(signature: $0) }
        guard let format else {
            throw ImageError.unrecognizedFormat(url, leadingBytes: bytes.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " "))
        }
        while true {
            switch bytes.withUnsafeBytes({ Codec.probe($0, isPNG: format == .png) }) {
            case let .size(width, height):
                return (width, height)
            case let .failure(reason):
                throw ImageError.decodeFailed(url, format: format, reason: reason)
            case .needsMoreData:
                let more: Data
                do { more = try handle.read(upToCount: max(bytes.count, firstRead)) ?? Data() } catch {
                    throw ImageError.unreadable(url, reason: error.localizedDescription)
                }
                if more.isEmpty {
                    throw ImageError.decodeFailed(url, format: format, reason: "the file ends before its header does (truncated?)")
                }
                bytes += more
            }
        }
    }
}
