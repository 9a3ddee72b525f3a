// The umbrella module: `import SwiftSKD` brings in the whole public API, from tensors to the trainer.

@_exported import SKDDistill
@_exported import SKDImage
@_exported import SKDModels
@_exported import SKDNN
@_exported import SKDTensor
