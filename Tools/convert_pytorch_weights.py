#!/usr/bin/env python3
"""Convert official PyTorch checkpoints into SwiftSKD safetensors files.

Handles the checkpoints the official repositories release:
  * Restormer / DRSformer (BasicSR): {'params': state_dict} (or 'params_ema', 'state_dict', 'net', 'model');
  * Uformer: {'state_dict': state_dict, 'epoch': ..., 'optimizer': ...}; keys may carry a 'module.' prefix (DataParallel);
  * torchvision VGG-19 (`vgg19-dcbb9e9d.pth` or `--torchvision-vgg19`): the `features.N.*` tensors are kept, the
    classifier is dropped.

The output holds every floating-point tensor as F32 under its state_dict name, plus metadata:
  config   the constructor arguments as JSON with "arch" (given by --arch/--preset/--config), which
           `skd distill --teacher`, `skd restore` and `skd info` read;
  source   the input file name.

Usage:
  python3 Tools/convert_pytorch_weights.py deraining.pth restormer.safetensors --preset restormer
  python3 Tools/convert_pytorch_weights.py Uformer_B.pth uformer_b.safetensors --config '{"arch": "uformer", "embed_dim": 32, ...}'
  python3 Tools/convert_pytorch_weights.py --torchvision-vgg19 vgg19.safetensors      (downloads through torchvision)

Loading a .pth needs PyTorch (`pip install torch`); writing needs only NumPy. The safetensors writer is our own
(the format is an 8-byte little-endian header length, a JSON header, then the raw little-endian data), so the
`safetensors` package is not required.
"""
import argparse
import json
import os
import struct
import sys
import tempfile

import numpy as np

# Constructor arguments of the presets, with the official argument names (kept in sync with SKDModels' presets).
PRESETS = {
    "restormer": {"arch": "restormer", "dim": 48, "num_blocks": [4, 6, 6, 8], "num_refinement_blocks": 4,
                  "heads": [1, 2, 4, 8], "ffn_expansion_factor": 2.66, "bias": False, "LayerNorm_type": "WithBias"},
    "restormer-s": {"arch": "restormer", "dim": 32, "num_blocks": [1, 2, 2, 4], "num_refinement_blocks": 1,
                    "heads": [1, 2, 4, 8], "ffn_expansion_factor": 2.66, "bias": False, "LayerNorm_type": "WithBias"},
    "drsformer": {"arch": "drsformer", "dim": 48, "num_blocks": [4, 6, 6, 8], "heads": [1, 2, 4, 8],
                  "ffn_expansion_factor": 2.66, "bias": False, "LayerNorm_type": "WithBias", "mefc": True},
    "drsformer-s": {"arch": "drsformer", "dim": 32, "num_blocks": [2, 2, 2, 4], "heads": [1, 2, 4, 8],
                    "ffn_expansion_factor": 2.66, "bias": False, "LayerNorm_type": "WithBias", "mefc": False},
    "uformer-b": {"arch": "uformer", "img_size": 256, "embed_dim": 32, "depths": [1, 2, 8, 8, 2, 8, 8, 2, 1],
                  "num_heads": [1, 2, 4, 8, 16, 16, 8, 4, 2], "win_size": 8, "mlp_ratio": 4.0, "token_projection": "linear",
                  "token_mlp": "leff", "modulator": True, "shift_flag": True},
    "uformer-s": {"arch": "uformer", "img_size": 256, "embed_dim": 16, "depths": [1, 2, 4, 4, 2, 4, 4, 2, 1],
                  "num_heads": [1, 2, 4, 8, 16, 16, 8, 4, 2], "win_size": 8, "mlp_ratio": 4.0, "token_projection": "linear",
                  "token_mlp": "leff", "modulator": True, "shift_flag": True},
    "vgg19_features": {"arch": "vgg19_features", "taps": {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20, "relu5_1": 29}},
}

STATE_KEYS = ("params_ema", "params", "state_dict", "net", "model")


def unwrap_state_dict(checkpoint):
    """The state dict inside a released checkpoint (BasicSR 'params', Uformer 'state_dict', or a bare dict)."""
    if not isinstance(checkpoint, dict):
        raise ValueError(f"expected a dict checkpoint, got {type(checkpoint).__name__}")
    for key in STATE_KEYS:
        if key in checkpoint and isinstance(checkpoint[key], dict):
            return checkpoint[key]
    return checkpoint


def clean_state_dict(state_dict, arch):
    """Float arrays by name: 'module.' prefixes removed, integer buffers and VGG's classifier dropped."""
    out, skipped = {}, []
    for name, value in state_dict.items():
        array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        if name.startswith("module."):
            name = name[len("module."):]
        if arch == "vgg19_features":
            if not name.startswith("features."):
                skipped.append(name)
                continue
        if not np.issubdtype(array.dtype, np.floating):
            skipped.append(name)  # e.g. Uformer's relative_position_index: SwiftSKD computes it
            continue
        out[name] = np.ascontiguousarray(array, dtype="<f4")
    return out, skipped


def write_safetensors(tensors, metadata, path):
    """Writes F32 tensors + string metadata atomically (temporary file in the same folder, then rename)."""
    header = {"__metadata__": {k: str(v) for k, v in metadata.items()}}
    offset = 0
    for name in sorted(tensors):
        nbytes = tensors[name].nbytes
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    folder = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(dir=folder, prefix=".convert-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for name in sorted(tensors):
                f.write(tensors[name].tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", nargs="?", help="the .pth checkpoint")
    parser.add_argument("output", help="the .safetensors file to write")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--preset", choices=sorted(PRESETS), help="the architecture and arguments of a SwiftSKD preset")
    group.add_argument("--config", help="the constructor arguments as JSON with an 'arch' key")
    parser.add_argument("--torchvision-vgg19", action="store_true", help="convert torchvision's ImageNet VGG-19 (needs torchvision)")
    args = parser.parse_args(argv)

    if args.torchvision_vgg19:
        import torchvision  # noqa: WPS433 (optional dependency)
        state_dict = torchvision.models.vgg19(weights=torchvision.models.VGG19_Weights.IMAGENET1K_V1).state_dict()
        config, source = PRESETS["vgg19_features"], "torchvision vgg19 IMAGENET1K_V1"
    else:
        if not args.input:
            parser.error("the input checkpoint is required (or --torchvision-vgg19)")
        if not (args.preset or args.config):
            parser.error("name the architecture with --preset or --config")
        config = PRESETS[args.preset] if args.preset else json.loads(args.config)
        if "arch" not in config:
            parser.error("--config needs an 'arch' key")
        import torch  # noqa: WPS433 (only needed to read .pth files)
        try:
            checkpoint = torch.load(args.input, map_location="cpu", weights_only=True)
        except Exception as error:  # report the file and the cause, never a traceback
            sys.exit(f"{args.input}: cannot read the checkpoint: {error}")
        state_dict, source = unwrap_state_dict(checkpoint), os.path.basename(args.input)

    tensors, skipped = clean_state_dict(state_dict, config["arch"])
    if not tensors:
        sys.exit(f"{args.input}: no floating-point tensors found")
    write_safetensors(tensors, {"config": json.dumps(config), "source": source}, args.output)
    print(f"wrote {len(tensors)} tensors to {args.output}" + (f" (skipped {len(skipped)}: {', '.join(skipped[:5])}{'…' if len(skipped) > 5 else ''})" if skipped else ""))


if __name__ == "__main__":
    main()
