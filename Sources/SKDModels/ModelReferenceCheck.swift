// Recomputes a model reference file — parameters, input, output, taps, probe and gradients of the official
// PyTorch implementation — and compares every stored tensor. The model parity tests and `skd reference-check`
// both run it, so users can confirm that converted weights behave as in PyTorch.

import Foundation
import SKDNN
import SKDTensor

/// One compared tensor: its name in the reference file and the relative error `‖ours − ref‖ / ‖ref‖`.
public struct ReferenceComparison: Sendable {
    /// The reference tensor's name (`output`, `tap.latent`, `grad.input`, `loss_gk`, ...).
    public var name: String
    /// `‖ours − reference‖ / ‖reference‖` (the absolute norm when the reference is all zeros).
    public var relativeError: Double
    /// The bound this tensor must meet.
    public var tolerance: Double
    /// Whether `relativeError ≤ tolerance`.
    public var passed: Bool { relativeError <= tolerance }

    /// A comparison result.
    public init(name: String, relativeError: Double, tolerance: Double) {
        self.name = name; self.relativeError = relativeError; self.tolerance = tolerance
    }
}

/// Errors of a reference check: the file cannot be interpreted.
public enum ReferenceCheckError: Error, CustomStringConvertible {
    /// The file lacks a tensor or metadata entry the check needs.
    case missing(file: String, what: String)
    /// The file's kind is not one SwiftSKD knows.
    case unknownKind(file: String, detail: String)

    /// A one-line message naming the file.
    public var description: String {
        switch self {
        case let .missing(file, what): return "\(file): missing \(what)"
        case let .unknownKind(file, detail): return "\(file): not a SwiftSKD reference file (\(detail))"
        }
    }
}

/// Recomputation of the model reference files (`restormer_tiny`, `uformer_tiny`, `drsformer_tiny`, `vgg19_features`, …).
public enum ModelReferenceCheck {
    /// Whether `name` is a reference tensor rather than a parameter.
    public static func isReferenceTensor(_ name: String) -> Bool {
        name == "input" || name == "output" || name == "probe" || name.hasPrefix("probe.") || name.hasPrefix("tap.") || name.hasPrefix("grad.")
    }

    /// Whether the file holds a model reference (an `input` and a `config` naming an architecture).
    public static func isModelFile(_ file: SafeTensorsFile) -> Bool {
        file.tensors["input"] != nil && file.metadata["config"]?.contains("\"arch\"") == true
    }

    /// Builds the model named by the file's `config` metadata, loads its parameters by name, runs `input` in eval
    /// mode, back-propagates `sum(output · probe)` (for VGG feature files `Σ_taps sum(tap · probe.<tap>)`), and
    /// compares `output`, every `tap.*`, `grad.input` and every `grad.<parameter>`.
    ///
    /// - Throws: `ReferenceCheckError` when the file lacks what the check needs; `ModuleError` when the
    ///   parameters do not fit the architecture.
    public static func run(_ file: SafeTensorsFile, name: String, tolerance: Double = 1e-4) throws -> [ReferenceComparison] {
        guard let configText = file.metadata["config"] else { throw ReferenceCheckError.missing(file: name, what: "metadata config") }
        guard let config = try? JSONSerialization.jsonObject(with: Data(configText.utf8)) as? [String: Any],
              let arch = config["arch"] as? String else {
            throw ReferenceCheckError.unknownKind(file: name, detail: "metadata config has no 'arch'")
        }
        func tensor(_ key: String) throws -> Tensor {
            guard let t = file.tensors[key] else { throw ReferenceCheckError.missing(file: name, what: "tensor \(key)") }
            return t
        }
        let model: any TappedModel
        if arch == "vgg19_features" {
            model = VGG19Features(config: try JSONDecoder().decode(VGG19FeaturesConfig.self, from: Data(configText.utf8)))
        } else {
            do { model = try ModelSpec(json: configText).makeModel() } catch {
                throw ReferenceCheckError.unknownKind(file: name, detail: "\(error)")
            }
        }
        try model.load(file.tensors.filter { !isReferenceTensor($0.key) }, strict: true)
        model.eval()

        var results: [ReferenceComparison] = []
        func compare(_ key: String, _ ours: Tensor?) throws {
            let reference = try tensor(key)
            guard let ours, ours.count == reference.count else {
                results.append(ReferenceComparison(name: key, relativeError: .infinity, tolerance: tolerance))
                return
            }
            results.append(ReferenceComparison(name: key, relativeError: ours.relativeError(to: reference), tolerance: tolerance))
        }

        let input = try tensor("input").copy()
        input.requiresGrad = true
        let taps = FeatureTaps()
        let output = model.forward(input, taps: taps)
        let tapNames = file.tensors.keys.filter { $0.hasPrefix("tap.") }.map { String($0.dropFirst(4)) }.sorted()
        var objective: Tensor
        if let probe = file.tensors["probe"] {
            try compare("output", output)
            objective = (output * probe).sum()
        } else {
            // Feature files: the loss is Σ_taps sum(tap · probe.<tap>).
            var sum: Tensor? = nil
            for tap in tapNames {
                guard let t = taps[tap] else { continue }
                let term = (t * (try tensor("probe.\(tap)"))).sum()
                sum = sum.map { $0 + term } ?? term
            }
            guard let sum else { throw ReferenceCheckError.missing(file: name, what: "probe or probe.<tap> tensors") }
            objective = sum
        }
        for tap in tapNames { try compare("tap.\(tap)", taps[tap]) }
        if file.tensors["probe"] != nil {
            // The inference path (fused kernels under noGrad) must be the same function.
            let reference = try tensor("output")
            let inference = noGrad { model.forward(input.detached(), taps: nil) }
            results.append(ReferenceComparison(name: "output (no grad)", relativeError: inference.relativeError(to: reference), tolerance: tolerance))
        }
        objective.backward()
        try compare("grad.input", input.grad)
        for (parameter, value) in model.namedParameters() where file.tensors["grad.\(parameter)"] != nil {
            try compare("grad.\(parameter)", value.grad)
        }
        return results
    }
}
