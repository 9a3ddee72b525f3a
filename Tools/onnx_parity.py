#!/usr/bin/env python3
"""Runs an exported ONNX model in ONNX Runtime on inputs written by SwiftSKD's tests and compares with SwiftSKD.

Usage: onnx_parity.py MANIFEST.json

The manifest: {"model": "student.onnx", "cases": [{"input": "x.f32", "shape": [N, C, H, W],
"expected": "y.f32", "expected_shape": [...]} | {"input": ..., "shape": ..., "expect_error": true}]}
with raw little-endian float32 files. Prints one JSON object per case on standard output:
{"case": i, "max_rel": max|ort - swift| / max|swift|, "norm_rel": ||ort - swift|| / ||swift||} or, for a case
expected to fail, {"case": i, "rejected": true|false, "error": "..."}. Exit status 3 when onnxruntime or numpy
cannot be imported, 0 otherwise (the caller judges the numbers).
"""
import json
import sys

try:
    import numpy as np
    import onnxruntime as ort
except ImportError as error:  # the Swift test decides whether a missing runtime is a skip or a failure
    print(f"onnx_parity.py: {error}", file=sys.stderr)
    sys.exit(3)


def main() -> int:
    with open(sys.argv[1]) as f:
        manifest = json.load(f)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(manifest["model"], options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for i, case in enumerate(manifest["cases"]):
        x = np.fromfile(case["input"], dtype="<f4").reshape(case["shape"])
        if case.get("expect_error"):
            try:
                session.run(None, {name: x})
                print(json.dumps({"case": i, "rejected": False, "error": ""}))
            except Exception as error:  # ORT raises its own exception types (InvalidArgument, Fail)
                print(json.dumps({"case": i, "rejected": True, "error": str(error).splitlines()[0][:300]}))
            continue
        y = session.run(None, {name: x})[0].astype(np.float64)
        expected = np.fromfile(case["expected"], dtype="<f4").reshape(case["expected_shape"]).astype(np.float64)
        if y.shape != expected.shape:
            print(json.dumps({"case": i, "shape_mismatch": [list(y.shape), list(expected.shape)]}))
            continue
        diff = np.abs(y - expected)
        max_rel = float(diff.max() / max(np.abs(expected).max(), 1e-30))
        norm_rel = float(np.linalg.norm(y - expected) / max(np.linalg.norm(expected), 1e-30))
        print(json.dumps({"case": i, "max_rel": max_rel, "norm_rel": norm_rel, "finite": bool(np.isfinite(y).all())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
