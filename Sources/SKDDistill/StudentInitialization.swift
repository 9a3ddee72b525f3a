// Starting a student from weights instead of a fresh initialisation: `--init-weights FILE` (BasicSR's
// `pretrain_network_g`, strict or not) and `--init-from-teacher` (every tensor sliced from the teacher's).

import Foundation
import SKDModels
import SKDNN
import SKDTensor

/// How a student's initial weights are chosen.
public enum StudentInitialization {
    /// Loads `tensors` into `model`.
    ///
    /// - Parameters:
    ///   - strict: every parameter must be given, every tensor must name a parameter, shapes must agree
    ///     (BasicSR's `strict_load_g: true`); when `false`, tensors whose name and shape match are loaded and the
    ///     rest is reported (BasicSR skips mismatched shapes the same way).
    ///   - source: names the file in messages.
    /// - Returns: a one-line report naming the missing, unexpected and mis-shaped keys (at most 4 of each).
    /// - Throws: `RunConfigurationError` in strict mode when any key is missing, unexpected or mis-shaped, or when
    ///   no tensor at all fits (nothing is loaded then).
    @discardableResult
    public static func load(_ tensors: [String: Tensor], into model: Module, strict: Bool, source: String) throws -> String {
        let state = model.stateDict()
        let missing = state.keys.filter { tensors[$0] == nil }.sorted()
        let unexpected = tensors.keys.filter { state[$0] == nil }.sorted()
        let misshaped = state.keys.filter { tensors[$0] != nil && tensors[$0]!.shape != state[$0]!.shape }.sorted()
        func list(_ names: [String], _ what: String, detail: (String) -> String = { $0 }) -> String? {
            guard !names.isEmpty else { return nil }
            return "\(names.count) \(what) (\(names.prefix(4).map(detail).joined(separator: ", "))\(names.count > 4 ? ", …" : ""))"
        }
        let problems = [list(missing, "missing"), list(unexpected, "unexpected"),
                        list(misshaped, "with another shape") { "\($0) \(tensors[$0]!.shape) vs \(state[$0]!.shape)" }].compactMap { $0 }
        if strict && !problems.isEmpty {
            throw RunConfigurationError("\(source): strict initial weights do not fit the student: \(problems.joined(separator: "; ")) (network.init_strict false loads what fits)")
        }
        let fitting = tensors.filter { state[$0.key]?.shape == $0.value.shape }
        guard !fitting.isEmpty else {
            throw RunConfigurationError("\(source): no tensor of the initial weights fits the student (\(problems.joined(separator: "; ")))")
        }
        try model.load(fitting, strict: false)
        let loaded = "loaded \(fitting.count) of \(state.count) student tensors from \(source)"
        return problems.isEmpty ? loaded : loaded + "; " + problems.joined(separator: "; ")
    }

    /// The teacher's tensors sliced to the student's shapes: for every student parameter, the teacher's tensor of
    /// the same name cut to the student's size along every axis, keeping the *first* entries (first channels,
    /// first heads; the first blocks of each level, since block `i` of a level has the same name in both).
    ///
    /// The rule is literal: tensors whose channels are grouped (Restormer's `qkv` [q; k; v], the gated FFN's two
    /// halves of `project_in`) are cut as one block, not per group, so the slice is a starting point, not the
    /// teacher's function.
    ///
    /// - Parameters:
    ///   - teacher: the teacher's state dict.
    ///   - student: the student's state dict (shapes only are read).
    /// - Throws: `RunConfigurationError` naming a student tensor the teacher lacks or has smaller along some axis.
    public static func slicedFromTeacher(_ teacher: [String: Tensor], student: [String: Tensor], source: String) throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (name, s) in student.sorted(by: { $0.key < $1.key }) {
            guard let t = teacher[name] else {
                throw RunConfigurationError("\(source): the teacher has no tensor \(name) to slice the student's from (does the student have more blocks than the teacher?)")
            }
            guard t.rank == s.rank, zip(t.shape, s.shape).allSatisfy({ $0 >= $1 }) else {
                throw RunConfigurationError("\(source): the teacher's \(name) \(t.shape) is smaller than the student's \(s.shape); slicing needs a student no wider than the teacher")
            }
            out[name] = slice(t, to: s.shape)
        }
        return out
    }

    /// The leading block of `tensor` of shape `shape` (`tensor[:shape[0], :shape[1], ...]`), contiguous.
    ///
    /// - Parameters:
    ///   - tensor: any shape.
    ///   - shape: the same rank, no axis larger than `tensor`'s.
    public static func slice(_ tensor: Tensor, to shape: [Int]) -> Tensor {
        precondition(tensor.rank == shape.count, "slice: rank \(tensor.rank) vs \(shape)")
        return noGrad {
            var t = tensor
            for axis in 0..<shape.count where t.shape[axis] != shape[axis] {
                t = t.slice(axis: axis, start: 0, end: shape[axis])
            }
            return t.copy()
        }
    }
}
