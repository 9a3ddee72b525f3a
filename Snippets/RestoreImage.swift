// Restore an image with converted official weights: build the network, load a safetensors file, read a PNG,
// run the network, write a PNG.
//
//   python3 Tools/convert_pytorch_weights.py real_denoising.pth restormer-denoise.safetensors
//   swift run -c release RestoreImage restormer-denoise.safetensors restormer noisy.png restored.png
import Foundation
import SwiftSKD

/// Restores the image at `input` with the network `architecture` (a preset name such as `restormer`, or the JSON
/// of its constructor arguments) and the weights in `weights`, and writes the result to `output` as PNG.
///
/// The official released weights work on pixels in [0, 1]; SwiftSKD-trained ones on [−1, 1] (`range`).
func restore(weights: URL, architecture: String, input: URL, output: URL, range: PixelRange = .zeroToOne) throws {
    // 1. The network, with the official architecture's constructor arguments.
    let spec = architecture.hasPrefix("{") ? try ModelSpec(json: architecture) : try ModelSpec.preset(architecture)
    let model = spec.makeModel()

    // 2. The weights, keyed by the official state-dict names; a strict load names any missing or misshapen key.
    let file = try SafeTensors.read(weights)
    try model.load(file.tensors)
    model.eval()

    // 3. Read the image (any PNG or JPEG, as RGB) into a [1, 3, H, W] tensor in the network's pixel range.
    let image = try Image(contentsOf: input, channels: .rgb)
    let degraded = image.tensor(range: range)

    // 4. Restore: pads to the network's size multiple, runs without recording gradients, crops back.
    let restored = Inference.restore(model, degraded)          // [1, 3, H, W]

    // 5. Back to 8-bit (clamped, rounded) and out as PNG.
    try Image(tensor: restored, range: range).write(to: output)
}

// snippet.hide
let arguments = CommandLine.arguments
guard arguments.count == 5 || arguments.count == 6 else {
    FileHandle.standardError.write(Data("usage: RestoreImage WEIGHTS.safetensors PRESET|JSON INPUT OUTPUT.png [0-1|-1-1]\n".utf8))
    exit(2)
}
let ranges: [String: PixelRange] = ["0-1": .zeroToOne, "-1-1": .minusOneToOne]
guard let range = arguments.count == 6 ? ranges[arguments[5]] : .zeroToOne else {
    FileHandle.standardError.write(Data("RestoreImage: unknown pixel range '\(arguments[5])' (0-1 or -1-1)\n".utf8))
    exit(2)
}
do {
    try restore(weights: URL(fileURLWithPath: arguments[1]), architecture: arguments[2], input: URL(fileURLWithPath: arguments[3]),
                output: URL(fileURLWithPath: arguments[4]), range: range)
    print(arguments[4])
} catch {
    FileHandle.standardError.write(Data("RestoreImage: \(error)\n".utf8))
    exit(1)
}
