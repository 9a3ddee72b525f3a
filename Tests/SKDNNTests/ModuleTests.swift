import Foundation
import SKDNN
import SKDTensor
import SKDTestSupport
import XCTest

/// A leaf with a parameter, an absent optional parameter and an ignored cache.
private final class Leaf: Module, UnaryLayer {
    var weight: Tensor
    var bias: Tensor?
    var _cache: Tensor? = Tensor(zeros: [3])
    let width: Int  // not a tensor: ignored

    init(_ n: Int, bias: Bool) {
        width = n
        weight = ParameterInit.ones([n])
        self.bias = bias ? ParameterInit.zeros([n]) : nil
        super.init()
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let y = x * weight
        return bias.map { y + $0 } ?? y
    }
}

/// Base class whose stored properties must come before the subclass's.
private class Base: Module {
    var temperature = ParameterInit.ones([1, 1, 1])
}

private final class Nested: Base {
    var proj: Leaf = Leaf(2, bias: true)
    var maybe: Leaf? = nil
    var blocks: [Leaf] = [Leaf(3, bias: false), Leaf(3, bias: true)]
    var body: [UnaryLayer] = [Leaf(4, bias: true), ReLU(), Leaf(4, bias: false)]
    var _teacher: Leaf = Leaf(5, bias: true)  // ignored child
    var scale: Tensor = ParameterInit.constant([2], 0.5)
    var head = Sequential(Identity(), Sequential(GELU(), Leaf(6, bias: true)))
}

final class ModuleTests: XCTestCase {
    func testParameterNamesFollowPyTorchConvention() {
        let model = Nested()
        let names = model.namedParameters().map(\.name)
        XCTAssertEqual(names, [
            "temperature",
            "proj.weight", "proj.bias",
            "blocks.0.weight", "blocks.1.weight", "blocks.1.bias",
            "body.0.weight", "body.0.bias", "body.2.weight",
            "scale",
            "head.1.1.weight", "head.1.1.bias",
        ])
        XCTAssertEqual(Set(model.stateDict().keys), Set(names))
        XCTAssertEqual(model.stateDict()["scale"].map(ObjectIdentifier.init), ObjectIdentifier(model.scale))
        XCTAssertEqual(model.parameterCount, 1 + 4 + 3 + 6 + 4 + 4 + 4 + 2 + 12)
        XCTAssertTrue(model.parameters().allSatisfy(\.requiresGrad))

        let modules = model.namedModules().map(\.name)
        XCTAssertEqual(modules, ["", "proj", "blocks.0", "blocks.1", "body.0", "body.1", "body.2",
                                 "head", "head.0", "head.1", "head.1.0", "head.1.1"])

        // An optional child that is set appears like any other.
        model.maybe = Leaf(1, bias: false)
        XCTAssertTrue(model.namedParameters().map(\.name).contains("maybe.weight"))
    }

    func testSharedModuleListedOnceAsParameterButUnderEveryNameInStateDict() {
        final class Tied: Module {
            var a = Leaf(2, bias: false)
            var b: Leaf
            override init() {
                b = Leaf(1, bias: false)
                super.init()
                b = a
            }
        }
        let tied = Tied()
        XCTAssertEqual(tied.namedParameters().map(\.name), ["a.weight"])
        XCTAssertEqual(tied.parameterCount, 2)
        XCTAssertEqual(Set(tied.stateDict().keys), ["a.weight", "b.weight"])
    }

    func testSequenceRunsInOrder() {
        let model = Nested()
        let x = Tensor(shape: [4], values: [-1, 2, -3, 4])
        model.stateDict()["body.0.bias"]!.assign(Tensor(shape: [4], values: [1, 1, 1, 1]))
        model.stateDict()["body.2.weight"]!.assign(Tensor(shape: [4], values: [2, 2, 2, 2]))
        // (x·1 + 1) → relu → ·2
        XCTAssertEqual(applySequence(model.body, to: x).values, [0, 6, 0, 10])
        XCTAssertEqual(Sequential(model.body)(x).values, [0, 6, 0, 10])
        XCTAssertEqual(LeakyReLU(0.5)(x).values, [-0.5, 2, -1.5, 4])
        XCTAssertEqual(Identity()(x).values, x.values)
        XCTAssertEqual(Sigmoid()(Tensor(shape: [1], values: [0])).values, [0.5])
    }

    func testLoadCopiesIntoExistingTensors() throws {
        let model = Nested()
        let before = model.namedParameters().map { ObjectIdentifier($0.tensor) }
        var values: [String: Tensor] = [:]
        for (i, (name, p)) in model.namedParameters().enumerated() {
            values[name] = randomTensor(p.shape, seed: UInt64(i + 1))
        }
        try model.load(values)
        XCTAssertEqual(model.namedParameters().map { ObjectIdentifier($0.tensor) }, before)
        for (name, p) in model.namedParameters() {
            XCTAssertEqual(p.values, values[name]!.values, name)
            XCTAssertFalse(p === values[name]!, name)
        }

        // Round trip through a safetensors file into a fresh model.
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("skd-module-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try SafeTensors.write(model.stateDict(), to: url)
        let fresh = Nested()
        try fresh.load(SafeTensors.read(url).tensors)
        for ((name, a), (_, b)) in zip(model.namedParameters(), fresh.namedParameters()) {
            XCTAssertEqual(a.values, b.values, name)
        }
    }

    func testLoadErrorsNameKeysAndShapesAndCopyNothing() {
        let model = Nested()
        var values = model.stateDict().mapValues { Tensor(shape: $0.shape, repeating: 7) }
        values["proj.bias"] = nil
        values["proj.extra"] = Tensor(zeros: [1])
        values["scale"] = Tensor(zeros: [3])
        let snapshot = model.stateDict().mapValues(\.values)

        XCTAssertThrowsError(try model.load(values)) { error in
            guard case let ModuleError.stateMismatch(missing, unexpected, mismatches) = error else {
                return XCTFail("unexpected error \(error)")
            }
            XCTAssertEqual(missing, ["proj.bias"])
            XCTAssertEqual(unexpected, ["proj.extra"])
            XCTAssertEqual(mismatches, [.init(name: "scale", expected: [2], found: [3])])
            let message = "\(error)"
            for part in ["proj.bias", "proj.extra", "scale", "[2]", "[3]"] {
                XCTAssertTrue(message.contains(part), "'\(part)' not in \(message)")
            }
        }
        // A shape mismatch fails even when not strict.
        XCTAssertThrowsError(try model.load(values, strict: false))
        XCTAssertEqual(model.stateDict().mapValues(\.values), snapshot)

        // Without the mismatch, a non-strict load copies what matches and reports the rest.
        values["scale"] = Tensor(shape: [2], values: [3, 4])
        XCTAssertThrowsError(try model.load(values))
        let result = try? model.load(values, strict: false)
        XCTAssertEqual(result, Module.LoadResult(missing: ["proj.bias"], unexpected: ["proj.extra"]))
        XCTAssertEqual(model.scale.values, [3, 4])
        XCTAssertEqual(model.proj.bias?.values, snapshot["proj.bias"])
        XCTAssertEqual(model.proj.weight.values, [7, 7])
    }

    func testFreezeTrainEvalZeroGrad() {
        let model = Nested()
        let total = model.parameters().count
        XCTAssertEqual(model.trainableParameters().count, total)
        model.blocks[1].freeze()
        XCTAssertEqual(model.trainableParameters().count, total - 2)
        model.freeze()
        XCTAssertTrue(model.trainableParameters().isEmpty)
        XCTAssertTrue(model.parameters().allSatisfy { !$0.requiresGrad })
        model.unfreeze()
        XCTAssertEqual(model.trainableParameters().count, total)

        XCTAssertTrue(model.namedModules().allSatisfy { $0.module.isTraining })
        model.eval()
        XCTAssertTrue(model.namedModules().allSatisfy { !$0.module.isTraining })
        XCTAssertFalse(model.head.layers[1].isTraining)
        model.train()
        XCTAssertTrue(model.namedModules().allSatisfy { $0.module.isTraining })

        let x = Tensor(shape: [2], values: [1, 2])
        (model.proj(x) * model.scale).sum().backward()
        XCTAssertNotNil(model.proj.weight.grad)
        XCTAssertNotNil(model.scale.grad)
        model.zeroGrad()
        XCTAssertTrue(model.parameters().allSatisfy { $0.grad == nil })
    }

    func testLinearInitialisationAndSeed() {
        ParameterInit.seed(42)
        let a = Linear(50, 7)
        ParameterInit.seed(42)
        let b = Linear(50, 7)
        XCTAssertEqual(a.weight.values, b.weight.values)
        XCTAssertEqual(a.bias?.values, b.bias?.values)
        XCTAssertNotEqual(Linear(50, 7).weight.values, a.weight.values)
        XCTAssertEqual(a.weight.shape, [7, 50])
        XCTAssertEqual(a.bias?.shape, [7])
        XCTAssertEqual(a.namedParameters().map(\.name), ["weight", "bias"])
        XCTAssertEqual(Linear(3, 2, bias: false).namedParameters().map(\.name), ["weight"])

        // U(−1/√50, 1/√50): inside the bound, spread over it, mean near 0, variance near bound²/3.
        let bound = 1 / Float(50).squareRoot()
        let w = Linear(50, 200).weight.values
        XCTAssertTrue(w.allSatisfy { abs($0) <= bound })
        XCTAssertGreaterThan(w.max()!, 0.95 * bound)
        XCTAssertLessThan(w.min()!, -0.95 * bound)
        let mean = w.reduce(0, +) / Float(w.count)
        let variance = w.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(w.count)
        XCTAssertEqual(mean, 0, accuracy: 0.05 * bound)
        XCTAssertEqual(variance, bound * bound / 3, accuracy: 0.05 * bound * bound)

        XCTAssertEqual(ParameterInit.fanIn(ofWeight: [16, 4, 3, 3]), 36)
        XCTAssertEqual(ParameterInit.fanIn(ofWeight: [5, 9]), 9)
        // a = 0 gives He's bound √(6/fanIn).
        let he = ParameterInit.kaimingUniform([1000], fanIn: 6, a: 0).values
        XCTAssertTrue(he.allSatisfy { abs($0) <= 1 } && he.contains { abs($0) > 0.9 })
    }

    func testLinearGradientsThroughModule() {
        let layer = Linear(6, 5)
        let x = randomTensor([2, 3, 6], seed: 11)
        checkGradients("Linear module", inputs: [x, layer.weight, layer.bias!]) { inputs in
            XCTAssert(inputs[1] === layer.weight)
            return layer(inputs[0])
        }
        let noBias = Linear(4, 3, bias: false)
        checkGradients("Linear module without bias", inputs: [randomTensor([7, 4], seed: 12), noBias.weight]) { noBias($0[0]) }

        // The module computes x·Wᵀ + b.
        let small = Linear(2, 1)
        small.weight.assign(Tensor(shape: [1, 2], values: [2, -1]))
        small.bias!.assign(Tensor(shape: [1], values: [0.5]))
        XCTAssertEqual(small(Tensor(shape: [2, 2], values: [1, 1, 3, 4])).values, [1.5, 2.5])
    }
}

/// Swift property names mapped to official state-dict keys through `stateDictKeys`.
private final class Renamed: Module {
    override class var stateDictKeys: [String: String] { ["qkvDwconv": "qkv_dwconv", "encoderLevel1": "encoder_level1"] }
    var qkvDwconv = ParameterInit.ones([2])
    var encoderLevel1: [Leaf] = [Leaf(3, bias: true)]
    var plainName = ParameterInit.zeros([1])
}

final class StateDictKeyTests: XCTestCase {
    func testStateDictKeysRenameMembersAndLoadUnderTheOfficialNames() throws {
        let module = Renamed()
        XCTAssertEqual(module.namedParameters().map(\.name),
                       ["qkv_dwconv", "encoder_level1.0.weight", "encoder_level1.0.bias", "plainName"])
        XCTAssertEqual(module.namedModules().map(\.name), ["", "encoder_level1.0"])
        try module.load(["qkv_dwconv": Tensor(shape: [2], values: [5, 6]), "encoder_level1.0.weight": Tensor(zeros: [3]),
                         "encoder_level1.0.bias": Tensor(ones: [3]), "plainName": Tensor(shape: [1], values: [7])])
        XCTAssertEqual(module.qkvDwconv.values, [5, 6])
        XCTAssertEqual(module.encoderLevel1[0].bias?.values, [1, 1, 1])
        // The Swift name is not a key.
        XCTAssertEqual(try module.load(["qkvDwconv": Tensor(zeros: [2])], strict: false).unexpected, ["qkvDwconv"])
        XCTAssertThrowsError(try module.load(["qkvDwconv": Tensor(zeros: [2])]))
    }
}
