// Recomputes the reference files of the distillation losses (`skd_mca_gk`, `skd_contrastive`,
// `skd_contrastive_ratio`, `wave_kd`) and compares every stored tensor. Used by the parity tests and by
// `skd reference-check`.

import Foundation
import SKDModels
import SKDNN
import SKDTensor

/// Recomputation of the loss reference files.
public enum LossReferenceCheck {
    /// The loss-file kinds, recognised by their tensor names.
    public enum Kind: String, CaseIterable, Sendable {
        case mcaGK = "skd_mca_gk", contrastive = "skd_contrastive", wavelet = "wave_kd"
    }

    /// The kind of a reference file, from its tensor names; `nil` when it is not a loss file.
    public static func kind(of file: SafeTensorsFile) -> Kind? {
        let names = Set(file.tensors.keys)
        if names.contains("loss_gk") && names.contains("student_feature") { return .mcaGK }
        if names.contains("loss_cl") && names.contains("student.0") { return .contrastive }
        if names.contains("loss_wave") { return .wavelet }
        return nil
    }

    /// The form a wavelet reference file defines: its config's `form` (`squared`/`absolute`), else its
    /// `definition` text (`mean|…|` is the absolute form; `mse`, `square` or `mean((…)^2)` the squared one).
    ///
    /// - Throws: `ReferenceCheckError.unknownKind` when neither says.
    public static func waveletForm(_ file: SafeTensorsFile, config: [String: Any], name: String) throws -> WaveletForm {
        if let text = config["form"] as? String {
            guard let form = WaveletForm(rawValue: text.lowercased()) else {
                throw ReferenceCheckError.unknownKind(file: name, detail: "unknown wavelet form '\(text)'")
            }
            return form
        }
        let definition = (file.metadata["definition"] ?? "").lowercased()
        if definition.contains("mean|") { return .absolute }
        if definition.contains("mse") || definition.contains("square") || definition.contains(")^2") || definition.contains(")**2") { return .squared }
        throw ReferenceCheckError.unknownKind(file: name, detail: "the wavelet file states no form (config 'form' or a definition)")
    }

    /// Recomputes a loss reference file and compares its stored losses (tolerance `lossTolerance`) and
    /// intermediate tensors and gradients (tolerance `tolerance`).
    public static func run(_ file: SafeTensorsFile, name: String, tolerance: Double = 1e-4,
                           lossTolerance: Double = 1e-5) throws -> [ReferenceComparison] {
        guard let kind = kind(of: file) else { throw ReferenceCheckError.unknownKind(file: name, detail: "no loss tensors") }
        let config = try configJSON(file, name: name)
        func tensor(_ key: String) throws -> Tensor {
            guard let t = file.tensors[key] else { throw ReferenceCheckError.missing(file: name, what: "tensor \(key)") }
            return t
        }
        var results: [ReferenceComparison] = []
        func compare(_ key: String, _ ours: Tensor, tol: Double) throws {
            results.append(ReferenceComparison(name: key, relativeError: ours.relativeError(to: try tensor(key)), tolerance: tol))
        }

        switch kind {
        case .mcaGK:
            let studentFeature = try tensor("student_feature").copy()
            studentFeature.requiresGrad = true
            let weight = try tensor("projector.weight")
            let projector = Conv2d(weight.shape[1], weight.shape[0], kernelSize: 1, bias: true)
            try projector.load(["weight": weight, "bias": try tensor("projector.bias")])
            var options = FeatureLossOptions()
            options.sigma = Float(config["sigma"] as? Double ?? 1)
            options.alpha1 = Float(config["alpha1"] as? Double ?? 0.5)
            options.spatialTokenThreshold = nil
            let projected = projector(studentFeature)
            let teacher = try tensor("teacher_feature")
            // A tile smaller than N, so the reference also exercises the tiling.
            let tokens = projected.shape[2] * projected.shape[3]
            options.spatialTileRows = max(1, tokens / 3)
            let terms = featureLoss(projected: projected, teacher: teacher, options: options)
            try compare("projected", projected, tol: tolerance)
            try compare("channel_attended", channelCrossAttention(student: projected, teacher: teacher), tol: tolerance)
            try compare("spatial_attended", spatialCrossAttention(student: projected, teacher: teacher, tileRows: options.spatialTileRows), tol: tolerance)
            try compare("loss_gk", terms.total, tol: lossTolerance)
            terms.total.backward()
            try compare("grad.student_feature", studentFeature.grad ?? Tensor(zeros: studentFeature.shape), tol: tolerance)
            try compare("grad.projector.weight", projector.weight.grad ?? Tensor(zeros: weight.shape), tol: tolerance)
            try compare("grad.projector.bias", projector.bias!.grad ?? Tensor(zeros: [weight.shape[0]]), tol: tolerance)

        case .contrastive:
            guard let weights = (config["weights"] as? [Double])?.map(Float.init) else {
                throw ReferenceCheckError.missing(file: name, what: "config.weights")
            }
            let form = ContrastiveForm(rawValue: config["form"] as? String ?? "infonce") ?? .infonce
            let tau = Float(config["tau"] as? Double ?? 0.1)
            let eps = Float(config["eps"] as? Double ?? 1e-7)
            var students: [Tensor] = []
            var total: Tensor? = nil
            for (l, w) in weights.enumerated() {
                let s = try tensor("student.\(l)").copy()
                s.requiresGrad = true
                students.append(s)
                let term = contrastiveLayerLoss(student: s, teacher: try tensor("teacher.\(l)"), degraded: try tensor("degraded.\(l)"),
                                                form: form, tau: tau, ratioEps: eps) * w
                total = total.map { $0 + term } ?? term
            }
            guard let total else { throw ReferenceCheckError.missing(file: name, what: "layers") }
            try compare("loss_cl", total, tol: lossTolerance)
            total.backward()
            for (l, s) in students.enumerated() {
                try compare("grad.student.\(l)", s.grad ?? Tensor(zeros: s.shape), tol: tolerance)
            }

        case .wavelet:
            let student = try tensor("student").copy()
            student.requiresGrad = true
            let levels = config["levels"] as? Int ?? 4
            let form = try waveletForm(file, config: config, name: name)
            let loss = waveletLoss(student: student, teacher: try tensor("teacher"), levels: levels, form: form)
            try compare("loss_wave", loss, tol: lossTolerance)
            loss.backward()
            try compare("grad.student", student.grad ?? Tensor(zeros: student.shape), tol: tolerance)
        }
        return results
    }

    /// The `config` metadata entry parsed as a JSON object (empty when absent).
    static func configJSON(_ file: SafeTensorsFile, name: String) throws -> [String: Any] {
        guard let text = file.metadata["config"] else { return [:] }
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw ReferenceCheckError.unknownKind(file: name, detail: "metadata config is not a JSON object")
        }
        return object
    }
}
