// Reading and writing image files: format detection by content, decoding through libpng/libjpeg (CImageShim),
// and atomic writes (a temporary file in the destination folder, renamed into place).

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The file formats SKDImage reads and writes.
public enum ImageFormat: String, Equatable, Sendable, CaseIterable {
    /// PNG (libpng): 1/2/4/8/16-bit gray, gray+alpha, RGB, RGBA and palette images.
    case png
    /// JPEG (libjpeg-turbo): baseline and progressive, gray and colour.
    case jpeg

    /// The usual name of the format ("PNG", "JPEG").
    public var name: String { self == .png ? "PNG" : "JPEG" }

    /// The format a file name extension stands for (`png`, `jpg`, `jpeg`; any case), or `nil`.
    public init?(pathExtension: String) {
        switch pathExtension.lowercased() {
        case "png": self = .png
        case "jpg", "jpeg", "jpe": self = .jpeg
        default: return nil
        }
    }

    /// The format whose signature starts `bytes` (PNG's 8-byte signature, JPEG's SOI marker), or `nil`.
    public init?(signature bytes: UnsafeRawBufferPointer) {
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        if bytes.count >= 8 && zip(bytes.prefix(8), png).allSatisfy({ $0 == $1 }) {
            self = .png
        } else if bytes.count >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF {
            self = .jpeg
        } else {
            return nil
        }
    }
}

extension ImageFormat {
    /// The format whose signature `bytes` is a proper beginning of (a file cut within its first bytes), or `nil`.
    init?(truncatedSignature bytes: UnsafeRawBufferPointer) {
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], jpeg: [UInt8] = [0xFF, 0xD8, 0xFF]
        if !bytes.isEmpty && bytes.count < png.count && zip(bytes, png).allSatisfy({ $0 == $1 }) {
            self = .png
        } else if !bytes.isEmpty && bytes.count < jpeg.count && zip(bytes, jpeg).allSatisfy({ $0 == $1 }) {
            self = .jpeg
        } else {
            return nil
        }
    }
}

/// How to encode an image when writing it.
public enum ImageEncoding: Equatable, Sendable {
    /// PNG with `bitDepth` 8 or 16 bits per sample and zlib `compression` level 0...9. Lossless at 8 bits for
    /// 8-bit images; float images are quantised (rounded, clamped) to the bit depth.
    case png(bitDepth: Int = 8, compression: Int = 6)
    /// JPEG at libjpeg `quality` 1...100, optionally progressive; 4:2:0 chroma unless `fullChroma` (4:4:4).
    case jpeg(quality: Int = 95, progressive: Bool = false, fullChroma: Bool = false)

    /// The file format this encoding produces.
    public var format: ImageFormat {
        if case .png = self { return .png } else { return .jpeg }
    }

    /// The default encoding for `format` (8-bit PNG, compression 6; JPEG quality 95).
    public static func defaults(for format: ImageFormat) -> ImageEncoding {
        format == .png ? .png() : .jpeg()
    }
}

/// Whether reading keeps a gray file gray or expands it to RGB.
public enum ChannelMode: Equatable, Sendable {
    /// 1 channel for gray files, 3 for colour files.
    case native
    /// Always 3 channels; gray is repeated into R, G and B.
    case rgb
}

extension Image {
    /// Reads and decodes the PNG or JPEG file at `url` (the format is taken from the file's first bytes, not its
    /// name). Alpha is dropped; 16-bit PNGs give float samples.
    ///
    /// - Throws: `ImageError` naming the file: missing, unreadable, empty, unrecognised, or rejected by the decoder.
    public init(contentsOf url: URL, channels: ChannelMode = .native) throws {
        let bytes = try readFile(url)
        try self.init(decoding: bytes, source: url, channels: channels)
    }

    /// Decodes PNG or JPEG `data` held in memory. `source` is only used to name the data in errors.
    ///
    /// - Throws: `ImageError` for empty, unrecognised or undecodable data.
    public init(decoding data: [UInt8], source: URL, channels: ChannelMode = .native) throws {
        if data.isEmpty { throw ImageError.emptyFile(source) }
        let image: Image = try data.withUnsafeBytes { raw in
            guard let format = ImageFormat(signature: raw) else {
                if let format = ImageFormat(truncatedSignature: raw) {
                    throw ImageError.decodeFailed(source, format: format, reason: "file is truncated inside the signature")
                }
                let hex = raw.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " ")
                throw ImageError.unrecognizedFormat(source, leadingBytes: hex)
            }
            switch Codec.decode(raw, isPNG: format == .png) {
            case .success(let image): return image
            case .failure(let reason): throw ImageError.decodeFailed(source, format: format, reason: reason)
            }
        }
        self = channels == .rgb ? image.rgb() : image
    }

    /// The image encoded as a PNG or JPEG byte stream.
    ///
    /// - Throws: `ImageError.encodeFailed` (with `destination` as its file) when the encoder refuses the image,
    ///   e.g. beyond 65535 pixels in a dimension.
    public func encoded(as encoding: ImageEncoding,
                        destination: URL = URL(fileURLWithPath: "(in memory)")) throws -> [UInt8] {
        let outcome: CodecOutcome<[UInt8]>
        switch encoding {
        case .png(let bitDepth, let compression):
            precondition(bitDepth == 8 || bitDepth == 16, "ImageEncoding.png: bit depth \(bitDepth) is not 8 or 16")
            outcome = Codec.encodePNG(self, bitDepth: bitDepth, compression: compression)
        case .jpeg(let quality, let progressive, let fullChroma):
            precondition((1...100).contains(quality), "ImageEncoding.jpeg: quality \(quality) is not in 1...100")
            outcome = Codec.encodeJPEG(self, quality: quality, progressive: progressive, fullChroma: fullChroma)
        }
        switch outcome {
        case .success(let bytes): return bytes
        case .failure(let reason): throw ImageError.encodeFailed(destination, format: encoding.format, reason: reason)
        }
    }

    /// Encodes the image and writes it to `url` atomically: the bytes go to a temporary file in the same folder,
    /// are flushed to disk, and the file is renamed over `url`, so a crash never leaves a partial image there.
    ///
    /// - Parameter encoding: how to encode; `nil` picks the default for the extension of `url` (`.png`, `.jpg`,
    ///   `.jpeg`).
    /// - Throws: `ImageError.writeFailed` for an unknown extension or an I/O failure, `.encodeFailed` if the
    ///   encoder refuses the image.
    public func write(to url: URL, as encoding: ImageEncoding? = nil) throws {
        let chosen: ImageEncoding
        if let encoding {
            chosen = encoding
        } else if let format = ImageFormat(pathExtension: url.pathExtension) {
            chosen = .defaults(for: format)
        } else {
            throw ImageError.writeFailed(url, reason: "unknown image extension '\(url.pathExtension)' (use .png, .jpg or .jpeg, or pass an encoding)")
        }
        try writeAtomically(try encoded(as: chosen, destination: url), to: url)
    }
}

// MARK: - File I/O

private func errnoText(_ code: Int32) -> String { String(cString: strerror(code)) }

/// The whole content of the file at `url`, through POSIX calls so the errno can be reported.
func readFile(_ url: URL) throws -> [UInt8] {
    let fd = open(url.path, O_RDONLY)
    if fd < 0 {
        let code = errno
        if code == ENOENT || code == ENOTDIR { throw ImageError.fileNotFound(url) }
        throw ImageError.unreadable(url, reason: errnoText(code))
    }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw ImageError.unreadable(url, reason: errnoText(errno)) }
    if (info.st_mode & S_IFMT) == S_IFDIR { throw ImageError.unreadable(url, reason: "is a directory") }
    let size = Int(info.st_size)
    if size == 0 { throw ImageError.emptyFile(url) }
    var failure: Int32 = 0
    let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
        var filled = 0
        while filled < size {
            let n = read(fd, buffer.baseAddress! + filled, size - filled)
            if n < 0 {
                if errno == EINTR { continue }
                failure = errno
                break
            }
            if n == 0 { break }  // the file shrank while we read it
            filled += n
        }
        initialized = filled
    }
    if failure != 0 { throw ImageError.unreadable(url, reason: errnoText(failure)) }
    if bytes.isEmpty { throw ImageError.emptyFile(url) }
    return bytes
}

/// Writes `bytes` to a fresh temporary file beside `url`, flushes it, and renames it over `url`.
func writeAtomically(_ bytes: [UInt8], to url: URL) throws {
    let folder = url.deletingLastPathComponent()
    let temporary = folder.appendingPathComponent(
        ".\(url.lastPathComponent).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp")
    let fd = open(temporary.path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
    if fd < 0 { throw ImageError.writeFailed(url, reason: "cannot create \(temporary.lastPathComponent): \(errnoText(errno))") }
    var failure: String? = nil
    bytes.withUnsafeBytes { buffer in
        var written = 0
        while written < buffer.count {
            let n = write(fd, buffer.baseAddress! + written, buffer.count - written)
            if n < 0 {
                if errno == EINTR { continue }
                failure = errnoText(errno)
                return
            }
            written += n
        }
    }
    // The data must be on disk before the rename is, or a power loss could leave an empty file at `url`.
    if failure == nil && fsync(fd) != 0 { failure = errnoText(errno) }
    if close(fd) != 0 && failure == nil { failure = errnoText(errno) }
    if failure == nil && rename(temporary.path, url.path) != 0 { failure = errnoText(errno) }
    if let failure {
        unlink(temporary.path)
        throw ImageError.writeFailed(url, reason: failure)
    }
}
