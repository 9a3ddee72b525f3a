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
    } catch let error as CustomStringConvertible {
        throw failure(error.description)
    } catch {
        throw failure("\(error)")
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
