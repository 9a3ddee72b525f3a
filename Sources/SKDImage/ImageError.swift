// Errors of reading, decoding, encoding and writing image files. Every case names the file, so a bad image in a
// folder of thousands can be found from the message alone.

import Foundation

/// A failure to read, decode, encode or write one image file.
public enum ImageError: Error, Equatable, CustomStringConvertible {
    /// Nothing exists at the path.
    case fileNotFound(URL)
    /// The file exists but could not be read (permissions, a folder, an I/O error).
    case unreadable(URL, reason: String)
    /// The file has zero bytes.
    case emptyFile(URL)
    /// The leading bytes are neither a PNG signature nor a JPEG SOI marker; `leadingBytes` shows them in hex.
    case unrecognizedFormat(URL, leadingBytes: String)
    /// libpng or libjpeg rejected the data (corrupt, truncated, unsupported variant); `reason` is its message.
    case decodeFailed(URL, format: ImageFormat, reason: String)
    /// The encoder rejected the image (for example an unsupported channel count).
    case encodeFailed(URL, format: ImageFormat, reason: String)
    /// The encoded bytes could not be written or moved into place; no partial file is left at `URL`.
    case writeFailed(URL, reason: String)

    /// The file the error is about.
    public var url: URL {
        switch self {
        case .fileNotFound(let url), .unreadable(let url, _), .emptyFile(let url),
             .unrecognizedFormat(let url, _), .decodeFailed(let url, _, _), .encodeFailed(let url, _, _),
             .writeFailed(let url, _):
            return url
        }
    }

    /// A one-line explanation naming the file and the cause.
    public var description: String {
        let path = url.path
        switch self {
        case .fileNotFound: return "\(path): no such file"
        case .unreadable(_, let reason): return "\(path): cannot read file: \(reason)"
        case .emptyFile: return "\(path): file is empty (0 bytes)"
        case .unrecognizedFormat(_, let bytes):
            return "\(path): not a PNG or JPEG file (starts with \(bytes))"
        case .decodeFailed(_, let format, let reason): return "\(path): corrupt or unsupported \(format.name): \(reason)"
        case .encodeFailed(_, let format, let reason): return "\(path): cannot encode \(format.name): \(reason)"
        case .writeFailed(_, let reason): return "\(path): cannot write file: \(reason)"
        }
    }
}

extension ImageError: LocalizedError {
    /// The same text as `description`, for `localizedDescription`.
    public var errorDescription: String? { description }
}
