// The closed choices of the official constructors (LayerNorm type, Uformer's token MLP and token projection) as
// enums. Their raw values are the official strings; decoding any other string fails with a one-line message
// naming the value and the accepted ones, before any model is built.

import Foundation

/// A closed choice whose raw values are the official argument strings.
public protocol OfficialChoice: RawRepresentable, CaseIterable, Codable, Sendable where RawValue == String {}

extension OfficialChoice {
    /// Decodes one of the official strings; another string is a `DecodingError.dataCorrupted` saying which
    /// values are accepted.
    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let value = Self(rawValue: text) else {
            let accepted = Self.allCases.map(\.rawValue).joined(separator: ", ")
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "'\(text)' is not supported; use \(accepted)")
        }
        self = value
    }

    /// The official string.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// Which of the official LayerNorm variants a Restormer or DRSformer uses (the official `LayerNorm_type`).
public enum LayerNormType: String, OfficialChoice {
    /// `(x − μ) / √(σ² + 1e-5) · weight + bias` over the channels of each pixel.
    case withBias = "WithBias"
    /// `x / √(σ² + 1e-5) · weight` (σ² still about the mean), no bias.
    case biasFree = "BiasFree"
}

/// The token feed-forward of Uformer's LeWin blocks (the official `token_mlp`).
public enum UformerTokenMLP: String, OfficialChoice {
    /// The locally-enhanced feed-forward (`LeFF`: linear, depthwise 3×3 on the token grid, linear).
    case leff
    /// The plain two-layer MLP (`Mlp`), under the official name `ffn`.
    case ffn
    /// The plain two-layer MLP (`Mlp`), under the official name `mlp`.
    case mlp
}

/// How Uformer's window attention projects tokens to queries, keys and values (the official `token_projection`).
/// Only the linear projection is implemented.
public enum UformerTokenProjection: String, OfficialChoice {
    /// `qkv.to_q` and `qkv.to_kv` linear layers.
    case linear
}
