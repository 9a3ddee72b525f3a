// Checkpoints: everything a run needs to continue exactly where it stopped.
//
// A checkpoint is a folder `checkpoints/iter-<N>/` holding
//   model.safetensors      the student's parameters under their state_dict names, and the projectors' under
//                          `projectors.<i>.*` (so the file loads directly into the student with strict: false)
//   optimizer.safetensors  Adam's moments and step counts
//   state.json             iteration, the sampler's state, best validation PSNR and the full resolved config
// It is written into `iter-<N>.tmp/` and renamed into place; `checkpoints/latest` (a one-line file, itself replaced
// atomically) names the newest complete checkpoint. A crash at any point leaves the previous checkpoint intact.

import Foundation
import SKDImage
import SKDModels
import SKDNN
import SKDTensor

/// The JSON part of a checkpoint.
public struct CheckpointState: Codable, Equatable {
    /// Completed iterations.
    public var iteration: Int
    /// The training sampler's position (its batches are a function of seed and index).
    public var sampler: TrainingSampler.State
    /// The best validation PSNR so far (RGB, dB).
    public var bestPSNR: Double?
    /// The iteration `bestPSNR` was reached at.
    public var bestIteration: Int?
    /// The full resolved configuration of the run, as JSON text.
    public var config: String
    /// Training seconds of every session up to this checkpoint (what a wall-clock budget counts and the log's
    /// `seconds` continue from); `nil` in checkpoints of older versions.
    public var seconds: Double? = nil

    /// A state with every field given.
    public init(iteration: Int, sampler: TrainingSampler.State, bestPSNR: Double?, bestIteration: Int?, config: String) {
        self.iteration = iteration; self.sampler = sampler; self.bestPSNR = bestPSNR; self.bestIteration = bestIteration; self.config = config
    }
}

extension CheckpointState {
    /// Checks the numbers a hand-edited `state.json` could hold: the iteration within `0...iterations` (the run's
    /// length, when known), the sampler's position and the best iteration not negative.
    ///
    /// - Throws: `RunConfigurationError` naming the file and the field.
    public func check(iterations: Int?, source: URL) throws {
        guard iteration >= 0 else { throw RunConfigurationError("\(source.path): iteration \(iteration) must be ≥ 0") }
        if let iterations, iteration > iterations {
            throw RunConfigurationError("\(source.path): iteration \(iteration) lies beyond the run's \(iterations) iterations (train.iterations)")
        }
        guard sampler.nextBatch >= 0 else { throw RunConfigurationError("\(source.path): sampler.nextBatch \(sampler.nextBatch) must be ≥ 0") }
        if let bestIteration, bestIteration < 0 || bestIteration > iteration {
            throw RunConfigurationError("\(source.path): bestIteration \(bestIteration) must lie in 0...\(iteration) (the iteration)")
        }
        if let bestPSNR, !bestPSNR.isFinite { throw RunConfigurationError("\(source.path): bestPSNR \(bestPSNR) is not a finite number") }
        if let seconds, !(seconds.isFinite && seconds >= 0) { throw RunConfigurationError("\(source.path): seconds \(seconds) must be a number ≥ 0") }
    }
}

/// A checkpoint failed to load or save; the message names the file.
public enum CheckpointError: Error, CustomStringConvertible {
    /// The folder holds no complete checkpoint.
    case missing(URL)
    /// A file of the checkpoint cannot be used; the string says why.
    case invalid(URL, String)

    /// A one-line message naming the file.
    public var description: String {
        switch self {
        case let .missing(url): return "\(url.path): no checkpoint there (expected model.safetensors, optimizer.safetensors, state.json)"
        case let .invalid(url, why): return "\(url.path): \(why)"
        }
    }
}

/// Reads and writes checkpoints of one run directory.
public struct CheckpointStore {
    /// `<run>/checkpoints`.
    public let directory: URL

    /// - Parameter runDirectory: the run's output folder.
    public init(runDirectory: URL) { directory = runDirectory.appendingPathComponent("checkpoints") }

    /// Saves a checkpoint for `state.iteration` and points `latest` at it. Keeps the newest `keep` checkpoints.
    ///
    /// - Returns: the checkpoint's folder.
    @discardableResult
    public func save(student: Module, projectors: Module?, optimizer: Adam, state: CheckpointState, keep: Int = 2) throws -> URL {
        let fm = FileManager.default
        try fm.createDirectory(at: directory, withIntermediateDirectories: true)
        let name = String(format: "iter-%08d", state.iteration)
        let final = directory.appendingPathComponent(name), temp = directory.appendingPathComponent(name + ".tmp")
        try? fm.removeItem(at: temp)
        try fm.createDirectory(at: temp, withIntermediateDirectories: true)
        var weights = student.stateDict()
        // Projectors name their parameters `projectors.<i>.weight`/`.bias` themselves.
        for (key, value) in projectors?.stateDict() ?? [:] { weights[key] = value }
        try SafeTensors.write(weights, metadata: ["format": "swiftskd-checkpoint"], to: temp.appendingPathComponent("model.safetensors"))
        var adam = optimizer.stateTensors()
        adam["lr"] = Tensor(shape: [1], values: [optimizer.lr])
        try SafeTensors.write(adam, to: temp.appendingPathComponent("optimizer.safetensors"))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(state).write(to: temp.appendingPathComponent("state.json"), options: .atomic)
        try? fm.removeItem(at: final)
        try fm.moveItem(at: temp, to: final)
        try Data((name + "\n").utf8).write(to: directory.appendingPathComponent("latest"), options: .atomic)
        // Older checkpoints go only once the new one is complete and named by `latest`.
        let all = (try? fm.contentsOfDirectory(atPath: directory.path)) ?? []
        for old in all.filter({ $0.hasPrefix("iter-") && !$0.hasSuffix(".tmp") }).sorted().dropLast(keep) {
            try? fm.removeItem(at: directory.appendingPathComponent(old))
        }
        return final
    }

    /// The newest complete checkpoint, or `nil` when the run has none.
    public func latest() -> URL? {
        guard let text = try? String(contentsOf: directory.appendingPathComponent("latest"), encoding: .utf8) else { return nil }
        let url = directory.appendingPathComponent(text.trimmingCharacters(in: .whitespacesAndNewlines))
        return FileManager.default.fileExists(atPath: url.appendingPathComponent("state.json").path) ? url : nil
    }

    /// Loads a checkpoint folder into the given modules and optimizer.
    ///
    /// - Returns: its JSON state.
    public static func load(_ folder: URL, student: Module, projectors: Module?, optimizer: Adam?) throws -> CheckpointState {
        let stateURL = folder.appendingPathComponent("state.json")
        guard FileManager.default.fileExists(atPath: stateURL.path) else { throw CheckpointError.missing(folder) }
        let state: CheckpointState
        do { state = try JSONDecoder().decode(CheckpointState.self, from: Data(contentsOf: stateURL)) } catch {
            throw CheckpointError.invalid(stateURL, "unreadable state: \(ErrorText.describe(error))")
        }
        do { try state.check(iterations: nil, source: stateURL) } catch let error as RunConfigurationError {
            throw CheckpointError.invalid(stateURL, String(error.message.dropFirst(stateURL.path.count + 2)))
        }
        let weights = try SafeTensors.read(folder.appendingPathComponent("model.safetensors")).tensors
        var studentWeights: [String: Tensor] = [:], projectorWeights: [String: Tensor] = [:]
        for (key, value) in weights {
            if key.hasPrefix("projectors.") { projectorWeights[key] = value } else { studentWeights[key] = value }
        }
        do {
            try student.load(studentWeights, strict: true)
            if let projectors { try projectors.load(projectorWeights, strict: true) }
        } catch {
            throw CheckpointError.invalid(folder.appendingPathComponent("model.safetensors"), "does not fit this student/projectors: \(error)")
        }
        if let optimizer {
            var adam = try SafeTensors.read(folder.appendingPathComponent("optimizer.safetensors")).tensors
            if let lr = adam.removeValue(forKey: "lr") { optimizer.lr = lr.pointer[0] }
            try optimizer.loadState(adam)
        }
        return state
    }
}
