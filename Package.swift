// swift-tools-version:6.1
//
// SwiftSKD — soft knowledge distillation for image-restoration transformers, in Swift over OpenBLAS.
// Layers (imports only go downwards): CSystem → SKDTensor → SKDNN → SKDImage/SKDModels → SKDDistill → SwiftSKD → skd.
import PackageDescription

// MARK: - Shared settings

/// Library targets carry no unsafeFlags: SwiftPM refuses them in packages used as dependencies.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v5),
]

let package = Package(
    name: "SwiftSKD",
    platforms: [.macOS(.v13)],
    // MARK: - Products
    products: [
        .library(name: "SKDTensor", targets: ["SKDTensor"]),
        .library(name: "SKDNN", targets: ["SKDNN"]),
        .library(name: "SKDModels", targets: ["SKDModels"]),
        .library(name: "SKDDistill", targets: ["SKDDistill"]),
        .library(name: "SKDImage", targets: ["SKDImage"]),
        .library(name: "SwiftSKD", targets: ["SwiftSKD"]),
        .library(name: "SKDDistributed", targets: ["SKDDistributed"]),
        .library(name: "SKDExport", targets: ["SKDExport"]),
        .executable(name: "skd", targets: ["skd"]),
    ],
    dependencies: [
        // YAML options files (SKDDistill's RunConfiguration) and the command line (the `skd` executable only).
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // `swift package generate-documentation` (`make docs`): the DocC catalog in Sources/SwiftSKD/SwiftSKD.docc and
        // the tutorials' code in Snippets/ (every snippet is also built, as an executable, by `swift build`).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // MARK: - C system libraries (internal to the Swift targets that wrap them)
        .systemLibrary(
            name: "COpenBLAS", path: "CSystem/COpenBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(
            name: "CLAPACKE", path: "CSystem/CLAPACKE", pkgConfig: "lapacke",
            providers: [.apt(["liblapacke-dev"])]),
        .systemLibrary(
            name: "CPNG", path: "CSystem/CPNG", pkgConfig: "libpng",
            providers: [.apt(["libpng-dev"])]),
        .systemLibrary(
            name: "CJPEG", path: "CSystem/CJPEG", pkgConfig: "libjpeg",
            providers: [.apt(["libjpeg-dev"])]),
        // Open MPI, for data-parallel training under mpirun (SKDDistributed and `skd` only).
        .systemLibrary(
            name: "CMPI", path: "CSystem/CMPI", pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev"])]),

        // setjmp-guarded libpng/libjpeg over memory buffers: no input can exit, abort or hang the process.
        .target(
            name: "CImageShim", path: "CSystem/CImageShim",
            linkerSettings: [.linkedLibrary("png16"), .linkedLibrary("jpeg")]),

        // Row kernels compiled three times, portable, AVX2 + FMA and AVX-512 (function attributes, chosen at run time).
        .target(name: "CSKDKernels", path: "CSystem/CSKDKernels"),

        // MARK: - Engine
        .target(
            name: "SKDTensor",
            dependencies: ["COpenBLAS", "CLAPACKE", "CSKDKernels"],
            swiftSettings: swiftSettings),

        // MARK: - Neural-network layer
        .target(
            name: "SKDNN",
            dependencies: ["SKDTensor"],
            swiftSettings: swiftSettings),

        // MARK: - Data: codecs, metrics, datasets, degradations, sampler
        .target(
            name: "SKDImage",
            dependencies: ["SKDTensor", "CImageShim"],
            swiftSettings: swiftSettings),

        // MARK: - Models and distillation
        .target(
            name: "SKDModels",
            dependencies: ["SKDNN"],
            swiftSettings: swiftSettings),
        .target(
            name: "SKDDistill",
            dependencies: ["SKDModels", "SKDImage", "SKDNN", .product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings),

        // MARK: - Distributed training (MPI); the library targets above never depend on it
        .target(
            name: "SKDDistributed",
            dependencies: ["CMPI", "SKDDistill"],
            swiftSettings: swiftSettings),

        // MARK: - ONNX export (`skd export`); the library targets above never depend on it
        .target(
            name: "SKDExport",
            dependencies: ["SKDModels"],
            swiftSettings: swiftSettings),

        // MARK: - Umbrella and command line
        // `import SwiftSKD` gives library users the whole public API.
        .target(
            name: "SwiftSKD",
            dependencies: ["SKDTensor", "SKDNN", "SKDImage", "SKDModels", "SKDDistill"],
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "skd",
            dependencies: ["SwiftSKD", "SKDDistributed", "SKDExport", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings),

        // MARK: - Tests
        .target(
            name: "SKDTestSupport",
            dependencies: ["SKDTensor"],
            path: "Tests/SKDTestSupport",
            swiftSettings: swiftSettings),
        .testTarget(
            name: "SKDTensorTests",
            dependencies: ["SKDTensor", "SKDTestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "SKDNNTests",
            dependencies: ["SKDNN", "SKDTestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "SKDImageTests",
            dependencies: ["SKDImage", "SKDTestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "SKDModelsTests",
            dependencies: ["SKDModels", "SKDTestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "SKDDistillTests",
            dependencies: ["SKDDistill", "SKDTestSupport"],
            swiftSettings: swiftSettings),
        // ONNX export parity: exported graphs run in ONNX Runtime (python3) against SwiftSKD's outputs.
        .testTarget(
            name: "SKDExportTests",
            dependencies: ["SKDExport", "SKDModels", "SKDTestSupport"],
            swiftSettings: swiftSettings),
        // Runs the built `skd` executable as a subprocess (bad-input errors, exit codes, interrupt and resume).
        .testTarget(
            name: "SKDCommandTests",
            dependencies: ["SwiftSKD", "SKDTestSupport"],
            swiftSettings: swiftSettings),

        // MARK: - Tools
        // The options parsers' libFuzzer harness (`make fuzz` builds it with -sanitize=fuzzer); a replay tool otherwise.
        .executableTarget(
            name: "skd-fuzz-options",
            dependencies: ["SKDDistill"],
            path: "Tools/SKDFuzzOptions",
            swiftSettings: swiftSettings),

        // MARK: - Benchmarks
        .executableTarget(
            name: "skd-bench",
            dependencies: ["SKDTensor", "SKDNN", "SKDModels", "SKDDistill",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Benchmarks/SKDBench",
            swiftSettings: swiftSettings),
    ]
)
