// Module: the container of parameters and sub-modules, with PyTorch's state_dict naming.
//
// Parameters are found by reflection over stored properties instead of being registered by hand, so a Swift
// model whose properties carry (or, through `stateDictKeys`, map to) the official PyTorch attribute names has the
// same state_dict keys
// (`encoder_level1.0.attn.qkv_dwconv.weight`) and loads PyTorch weights without a name map.

import Foundation
import SKDTensor

/// One direct member of a module: a parameter or a sub-module, with its local name (no dots).
public enum ModuleMember {
    /// A parameter tensor (any shape, float32) stored in the module.
    case parameter(name: String, tensor: Tensor)
    /// A sub-module; its members are named `name.<member>`.
    case child(name: String, module: Module)
}

/// Why `Module.load` refused a set of tensors. Nothing has been copied when it is thrown.
public enum ModuleError: Error, LocalizedError, CustomStringConvertible {
    /// The tensors do not match the module's parameters. `missing`: parameters with no tensor (an error only
    /// in strict mode); `unexpected`: tensors matching no parameter (strict mode only); `shapeMismatches`:
    /// parameters whose tensor has another shape (always an error).
    case stateMismatch(missing: [String], unexpected: [String], shapeMismatches: [ShapeMismatch])

    /// A parameter whose provided tensor has the wrong shape.
    public struct ShapeMismatch: Equatable {
        /// The parameter's dotted name.
        public var name: String
        /// The parameter's shape.
        public var expected: [Int]
        /// The provided tensor's shape.
        public var found: [Int]

        /// A mismatch record for parameter `name`.
        public init(name: String, expected: [Int], found: [Int]) {
            self.name = name
            self.expected = expected
            self.found = found
        }
    }

    /// The message, naming the offending keys and shapes.
    public var description: String {
        switch self {
        case let .stateMismatch(missing, unexpected, shapeMismatches):
            func list(_ names: [String]) -> String {
                let shown = names.prefix(20).joined(separator: ", ")
                return names.count > 20 ? "\(shown), … (\(names.count) in all)" : shown
            }
            var parts: [String] = []
            if !missing.isEmpty { parts.append("missing keys: \(list(missing))") }
            if !unexpected.isEmpty { parts.append("unexpected keys: \(list(unexpected))") }
            if !shapeMismatches.isEmpty {
                parts.append("shape mismatches: " + list(shapeMismatches.map { "\($0.name) expects \($0.expected), got \($0.found)" }))
            }
            return "Module.load: " + parts.joined(separator: "; ")
        }
    }

    /// The same text as `description`, for `localizedDescription`.
    public var errorDescription: String? { description }
}

/// A neural-network building block that owns parameters and sub-modules (PyTorch's `nn.Module`).
///
/// Members are discovered with `Mirror` over the stored properties, superclass properties first, each class's in
/// declaration order:
/// - a `Tensor` or `Tensor?` property is a parameter named after the property, or after its entry in
///   `stateDictKeys` (`nil` ones are absent);
/// - a `Module` or `Module?` property (any subclass) is a child: its members get the prefix `name.`;
/// - an array property whose value casts to `[Module]` (e.g. `[TransformerBlock]`, `[UnaryLayer]`) gives the
///   children `name.0`, `name.1`, …;
/// - properties whose names start with `_` (caches, back-references, constant buffers that are not
///   parameters) and everything else are ignored.
///
/// Name the Swift properties like the PyTorch attributes, or list the official names in `stateDictKeys`, and the
/// names equal PyTorch's `state_dict` keys.
/// Subclasses with other naming needs override `members()` (as `Sequential` does).
///
/// A module must not hold its ancestors through non-underscore properties; such cycles are cut, not followed.
/// Module trees are built and used from one thread at a time.
open class Module {
    /// Whether the module is in training mode (dropout, drop-path active). New modules train; see `train()`/`eval()`.
    public private(set) var isTraining = true

    /// An empty module. Subclasses create their parameters (with `requiresGrad = true`) in their initialisers.
    public init() {}

    /// The state-dict names of the members whose Swift property names differ from the official (PyTorch)
    /// attribute names, keyed by Swift property name (e.g. `["patchEmbed": "patch_embed"]`). Reflection names
    /// every other member after its property. Model classes override this so that their Swift API uses Swift
    /// names while parameter names stay the official checkpoint keys.
    open class var stateDictKeys: [String: String] { [:] }

    /// The direct parameters and children, in naming order. The default reflects over stored properties as
    /// described on `Module`; override to name members differently.
    open func members() -> [ModuleMember] {
        var mirrors: [Mirror] = []
        var mirror: Mirror? = Mirror(reflecting: self)
        while let current = mirror {
            mirrors.append(current)
            mirror = current.superclassMirror
        }
        var result: [ModuleMember] = []
        let keys = type(of: self).stateDictKeys
        for mirror in mirrors.reversed() {
            for child in mirror.children {
                // `$__lazy_storage_$_x` (lazy vars) and `_x` (property-wrapper storage, opted-out caches) are skipped.
                guard let property = child.label, !property.hasPrefix("_"), !property.hasPrefix("$") else { continue }
                let label = keys[property] ?? property
                let value = child.value
                if let tensor = value as? Tensor {
                    result.append(.parameter(name: label, tensor: tensor))
                } else if let module = value as? Module {
                    result.append(.child(name: label, module: module))
                } else if let modules = value as? [Module] {
                    for (index, module) in modules.enumerated() {
                        result.append(.child(name: "\(label).\(index)", module: module))
                    }
                }
            }
        }
        return result
    }

    /// Walks the tree depth-first in naming order, calling `visit` for every parameter with its dotted name.
    /// With `unique`, each module and each tensor is reported once (first name wins, as PyTorch's
    /// `named_parameters`); without, a shared module or tensor appears under every name (as `state_dict`).
    private func walkParameters(unique: Bool, _ visit: (String, Tensor) -> Void) {
        var seenModules = Set<ObjectIdentifier>()
        var seenTensors = Set<ObjectIdentifier>()
        var ancestors = Set<ObjectIdentifier>()
        func walk(_ module: Module, _ prefix: String) {
            ancestors.insert(ObjectIdentifier(module))
            defer { ancestors.remove(ObjectIdentifier(module)) }
            for member in module.members() {
                switch member {
                case let .parameter(name, tensor):
                    if unique, !seenTensors.insert(ObjectIdentifier(tensor)).inserted { continue }
                    visit(prefix + name, tensor)
                case let .child(name, child):
                    let id = ObjectIdentifier(child)
                    if ancestors.contains(id) { continue }
                    if unique, !seenModules.insert(id).inserted { continue }
                    walk(child, prefix + name + ".")
                }
            }
        }
        seenModules.insert(ObjectIdentifier(self))
        walk(self, "")
    }

    /// Every parameter with its dotted name, in naming order; a tensor shared by several modules is listed once,
    /// under its first name.
    public func namedParameters() -> [(name: String, tensor: Tensor)] {
        var result: [(name: String, tensor: Tensor)] = []
        walkParameters(unique: true) { result.append((name: $0, tensor: $1)) }
        return result
    }

    /// Every parameter once, in naming order (what an optimizer receives).
    public func parameters() -> [Tensor] { namedParameters().map(\.tensor) }

    /// The parameters that currently require gradients, in naming order.
    public func trainableParameters() -> [Tensor] { parameters().filter(\.requiresGrad) }

    /// This module (name `""`) and every descendant once, with dotted names, parents before children.
    public func namedModules() -> [(name: String, module: Module)] {
        var result: [(name: String, module: Module)] = [("", self)]
        var seen: Set<ObjectIdentifier> = [ObjectIdentifier(self)]
        func walk(_ module: Module, _ prefix: String) {
            for case let .child(name, child) in module.members() where seen.insert(ObjectIdentifier(child)).inserted {
                result.append((prefix + name, child))
                walk(child, prefix + name + ".")
            }
        }
        walk(self, "")
        return result
    }

    /// The parameters by dotted name (PyTorch's `state_dict`); shared tensors appear under every name.
    /// The values are the live parameter tensors, not copies: save them before changing the model.
    public func stateDict() -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        walkParameters(unique: false) { result[$0] = $1 }
        return result
    }

    /// What a non-strict `load` left out.
    public struct LoadResult: Equatable {
        /// Parameters for which no tensor was given (kept at their current values).
        public var missing: [String]
        /// Given tensors that match no parameter (ignored).
        public var unexpected: [String]

        /// A result listing `missing` and `unexpected` names.
        public init(missing: [String], unexpected: [String]) {
            self.missing = missing
            self.unexpected = unexpected
        }
    }

    /// Copies `tensors` into the existing parameter tensors (object identity is kept, so optimizers holding the
    /// parameters see the new values).
    ///
    /// - Parameters:
    ///   - tensors: values by dotted name, each shaped exactly like its parameter.
    ///   - strict: when `true` (as PyTorch's `load_state_dict`), every parameter must be given and every tensor
    ///     must match a parameter.
    /// - Returns: the missing and unexpected names (both empty after a successful strict load).
    /// - Throws: `ModuleError.stateMismatch` naming every offending key and shape; nothing is copied then.
    @discardableResult
    public func load(_ tensors: [String: Tensor], strict: Bool = true) throws -> LoadResult {
        let state = stateDict()
        var missing: [String] = []
        var mismatches: [ModuleError.ShapeMismatch] = []
        for (name, parameter) in state {
            guard let value = tensors[name] else { missing.append(name); continue }
            if value.shape != parameter.shape {
                mismatches.append(.init(name: name, expected: parameter.shape, found: value.shape))
            }
        }
        let unexpected = tensors.keys.filter { state[$0] == nil }.sorted()
        missing.sort()
        mismatches.sort { $0.name < $1.name }
        if !mismatches.isEmpty || (strict && (!missing.isEmpty || !unexpected.isEmpty)) {
            throw ModuleError.stateMismatch(
                missing: strict ? missing : [], unexpected: strict ? unexpected : [], shapeMismatches: mismatches)
        }
        for (name, parameter) in state {
            if let value = tensors[name] { parameter.assign(value) }
        }
        return LoadResult(missing: missing, unexpected: unexpected)
    }

    /// Stops gradients to every parameter (`requiresGrad = false`), e.g. for a teacher network.
    public func freeze() { for p in parameters() { p.requiresGrad = false } }

    /// Lets gradients reach every parameter again (`requiresGrad = true`).
    public func unfreeze() { for p in parameters() { p.requiresGrad = true } }

    /// Puts this module and all descendants in training mode.
    public func train() { for (_, m) in namedModules() { m.isTraining = true } }

    /// Puts this module and all descendants in evaluation mode (no dropout or drop-path).
    public func eval() { for (_, m) in namedModules() { m.isTraining = false } }

    /// Forgets the accumulated gradients of every parameter.
    public func zeroGrad() { for p in parameters() { p.zeroGrad() } }

    /// The number of scalar parameters (shared tensors counted once).
    public var parameterCount: Int { parameters().reduce(0) { $0 + $1.count } }
}
