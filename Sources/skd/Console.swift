// Output helpers shared by the commands: one-line errors with a clear exit code, aligned tables.

import ArgumentParser
import Foundation
import SwiftSKD

/// Exit codes of `skd`, documented in the user guide.
enum ExitStatus {
    /// Bad input found before any work (missing folder, unknown preset, ...).
    static let badInput: Int32 = 2
    /// A loss became NaN or infinite.
    static let nonFinite: Int32 = 3
    /// A reference check exceeded its tolerance.
    static let referenceMismatch: Int32 = 4
    /// SIGINT/SIGTERM during training (a checkpoint was written), as shells report a SIGINT death.
    static let interrupted: Int32 = 130
}

/// Writes `line` and a newline to standard error.
func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// Prints `skd: error: <message>` (one line) and returns the exit code to throw.
func failure(_ message: String, status: Int32 = ExitStatus.badInput) -> ExitCode {
    printError("skd: error: " + message.split(whereSeparator: \.isNewline).joined(separator: " "))
    return ExitCode(status)
}

/// Runs `body`, turning the errors users can cause into one-line messages and exit codes.
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as ExitCode {
        throw error
    } catch let error as TrainingError {
        switch error {
        case .interrupted: throw failure(error.description, status: ExitStatus.interrupted)
        case .nonFinite: throw failure(error.description, status: ExitStatus.nonFinite)
        }
    } catch let error as RunConfigurationError {
        throw failure(error.message)
    } catch {
        throw failure(describeError(error))
    }
}

/// One line for any error; Foundation's file errors name the path and the reason instead of their raw dump.
func describeError(_ error: Error) -> String { ErrorText.describe(error) }

/// Checks that a file an option names can be written: its folder exists (and is a folder), and the path is not
/// a folder itself. Run before any work, so a typo does not cost the work's results.
func checkWritableFile(_ path: String, option: String) throws {
    let url = URL(fileURLWithPath: path)
    let fm = FileManager.default
    var isDirectory: ObjCBool = false
    if fm.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue {
        throw RunConfigurationError("\(option) \(url.path): is a folder, not a file")
    }
    let parent = url.deletingLastPathComponent()
    guard fm.fileExists(atPath: parent.path, isDirectory: &isDirectory) else {
        throw RunConfigurationError("\(option) \(url.path): no such folder \(parent.path)")
    }
    guard isDirectory.boolValue else { throw RunConfigurationError("\(option) \(url.path): \(parent.path) is a file, not a folder") }
    guard fm.isWritableFile(atPath: parent.path) else { throw RunConfigurationError("\(option) \(url.path): the folder \(parent.path) is not writable") }
}

/// Checks that a folder an option names is a folder or can be created: the nearest existing ancestor is a folder.
func checkCreatableFolder(_ path: String, option: String) throws {
    var url = URL(fileURLWithPath: path).standardizedFileURL
    let fm = FileManager.default
    var isDirectory: ObjCBool = false
    while !fm.fileExists(atPath: url.path, isDirectory: &isDirectory) {
        let parent = url.deletingLastPathComponent()
        if parent.path == url.path { return }
        url = parent
    }
    guard isDirectory.boolValue else { throw RunConfigurationError("\(option) \(path): \(url.path) is a file, not a folder") }
}

/// Parses a memory size: bytes, or a number with K, M, G or T (powers of 1024; an optional B or iB).
func parseMemorySize(_ text: String, option: String) throws -> Double {
    var t = text.trimmingCharacters(in: .whitespaces).uppercased()
    for suffix in ["IB", "B"] where t.hasSuffix(suffix) { t.removeLast(suffix.count); break }
    var scale = 1.0
    if let last = t.last, let power = ["K": 1, "M": 2, "G": 3, "T": 4][String(last)] {
        scale = pow(1024, Double(power)); t.removeLast()
    }
    guard let value = Double(t.trimmingCharacters(in: .whitespaces)), value.isFinite, value > 0, value * scale >= 1024 else {
        throw RunConfigurationError("\(option) '\(text)': expected a size of at least 1K, e.g. 4G or 512M")
    }
    return value * scale
}

/// Bytes for people: "3.2 GB".
func formatBytes(_ bytes: Double) -> String {
    for (unit, scale) in [("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)] where bytes >= scale {
        return String(format: "%.3g %@", bytes / scale, unit)
    }
    return String(format: "%.0f B", bytes)
}

/// The largest `--tile` accepted (a tile that large is the whole image anyway).
let maximumTile = 1 << 16

/// Checks `--tile` and `--tile-overlap` of restore and eval.
func checkTiling(tile: Int?, overlap: Int) throws {
    guard (0...maximumTile).contains(overlap) else { throw RunConfigurationError("--tile-overlap \(overlap) must lie in 0...\(maximumTile)") }
    if let tile {
        guard (1...maximumTile).contains(tile) else { throw RunConfigurationError("--tile \(tile) must lie in 1...\(maximumTile)") }
        guard tile > overlap else { throw RunConfigurationError("--tile \(tile) must exceed --tile-overlap \(overlap)") }
    }
}

/// A plain-text table with right-aligned numeric columns.
struct TextTable {
    var header: [String]
    var rows: [[String]] = []

    func render() -> String {
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                return i == 0 ? cell + pad : pad + cell
            }.joined(separator: "  ")
        }
        let rule = widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")
        return ([line(header), rule] + rows.map(line)).joined(separator: "\n")
    }
}

/// `value` with `digits` decimals, or "-" when absent.
func formatted(_ value: Double?, _ digits: Int) -> String {
    guard let value, value.isFinite else { return value == .infinity ? "inf" : "-" }
    return String(format: "%.\(digits)f", value)
}

extension PixelRange: ExpressibleByArgument {
    /// `-1-1`/`minus-one-to-one` or `0-1`/`zero-to-one`.
    public init?(argument: String) {
        switch argument.lowercased() {
        case "-1-1", "-1,1", "minus-one-to-one", "minusonetoone", "[-1,1]": self = .minusOneToOne
        case "0-1", "0,1", "zero-to-one", "zerotoone", "[0,1]": self = .zeroToOne
        default: return nil
        }
    }

    /// The default as help shows it: the argument form, not the Swift case name.
    public var defaultValueDescription: String { self == .minusOneToOne ? "-1-1" : "0-1" }
}

/// The model named on the command line: a weights file, checkpoint or run folder, or a preset (fresh weights).
struct NamedModel {
    /// The label shown in tables.
    var label: String
    /// The network, in eval mode.
    var model: any TappedModel & ModelStatistics
    /// The architecture.
    var spec: ModelSpec
    /// Where its weights came from (`nil` for a preset with fresh weights).
    var file: URL?

    /// Parses `[label=]PATH`, or a preset name when `allowPreset` and no such path exists.
    static func load(_ argument: String, architecture: ModelSpec? = nil, allowPreset: Bool = false) throws -> NamedModel {
        var label: String? = nil, path = argument
        if let eq = argument.firstIndex(of: "="), !FileManager.default.fileExists(atPath: argument) {
            label = String(argument[..<eq]); path = String(argument[argument.index(after: eq)...])
        }
        if allowPreset, !FileManager.default.fileExists(atPath: path) {
            guard let spec = try? ModelSpec.preset(path) else {
                throw RunConfigurationError("'\(path)' is neither a preset (\(ModelSpec.presetNames.joined(separator: ", "))) nor a weights file or folder")
            }
            let model = spec.makeModel()
            model.eval()
            return NamedModel(label: label ?? path, model: model, spec: spec, file: nil)
        }
        let weights = try ModelWeights.load(URL(fileURLWithPath: path), architecture: architecture)
        let defaultLabel = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        return NamedModel(label: label ?? defaultLabel, model: try weights.makeModel(), spec: weights.spec, file: weights.file)
    }
}
