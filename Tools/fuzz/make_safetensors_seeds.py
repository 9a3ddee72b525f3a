#!/usr/bin/env python3
"""Writes seed safetensors files for `make fuzz` into the folder given: float32/float16/bfloat16 tensors of
several shapes, with and without metadata, an empty file of tensors, a zero-sized tensor."""
import json, struct, sys, os

def write(path, tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw); offset += len(raw)
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))

folder = sys.argv[1]
os.makedirs(folder, exist_ok=True)
f32 = lambda values: struct.pack("<%df" % len(values), *values)
write(os.path.join(folder, "f32.safetensors"), {"w": ("F32", [2, 3], f32([0.5, -1, 2, 3, 4, 5])), "b": ("F32", [3], f32([1, 2, 3]))},
      {"format": "swiftskd-weights", "config": "{\"arch\": \"restormer\", \"dim\": 8}"})
write(os.path.join(folder, "f16.safetensors"), {"h": ("F16", [4], struct.pack("<4e", 1.0, -2.0, 0.5, 65504.0))})
write(os.path.join(folder, "bf16.safetensors"), {"g": ("BF16", [2, 2], struct.pack("<4H", 0x3f80, 0xbf80, 0x4000, 0x0000))})
write(os.path.join(folder, "empty.safetensors"), {})
write(os.path.join(folder, "zero.safetensors"), {"z": ("F32", [0, 4], b"")}, {"note": "zero-sized"})
