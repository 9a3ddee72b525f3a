#!/usr/bin/env python3
"""Tests of the converter's checkpoint unwrapping, cleaning and safetensors writer (NumPy only, no PyTorch)."""
import json
import os
import struct
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import convert_pytorch_weights as convert  # noqa: E402


class ConverterTests(unittest.TestCase):
    def test_unwraps_basicsr_and_uformer_checkpoints(self):
        sd = {"a.weight": np.ones((2, 2), np.float32)}
        self.assertIs(convert.unwrap_state_dict({"params": sd}), sd)
        self.assertIs(convert.unwrap_state_dict({"state_dict": sd, "epoch": 3}), sd)
        self.assertIs(convert.unwrap_state_dict(sd), sd)

    def test_cleans_prefixes_integers_and_vgg_classifier(self):
        sd = {"module.x.weight": np.arange(6, dtype=np.float64).reshape(2, 3),
              "module.attn.relative_position_index": np.zeros((4, 4), np.int64)}
        out, skipped = convert.clean_state_dict(sd, "uformer")
        self.assertEqual(list(out), ["x.weight"])
        self.assertEqual(out["x.weight"].dtype, np.dtype("<f4"))
        self.assertEqual(skipped, ["attn.relative_position_index"])
        vgg, dropped = convert.clean_state_dict({"features.0.weight": np.ones(3, np.float32),
                                                 "classifier.0.weight": np.ones(3, np.float32)}, "vgg19_features")
        self.assertEqual(list(vgg), ["features.0.weight"])
        self.assertEqual(dropped, ["classifier.0.weight"])

    def test_writes_a_valid_safetensors_file(self):
        tensors = {"b": np.array([[1.5, -2.0]], "<f4"), "a": np.arange(3, dtype="<f4")}
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "out.safetensors")
            convert.write_safetensors(tensors, {"config": json.dumps({"arch": "restormer"})}, path)
            self.assertEqual(os.listdir(folder), ["out.safetensors"], "no temporary file is left behind")
            data = open(path, "rb").read()
        (n,) = struct.unpack("<Q", data[:8])
        self.assertEqual(n % 8, 0)
        header = json.loads(data[8:8 + n])
        self.assertEqual(json.loads(header["__metadata__"]["config"])["arch"], "restormer")
        self.assertEqual(header["a"], {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]})
        self.assertEqual(header["b"]["data_offsets"], [12, 20])
        body = data[8 + n:]
        self.assertEqual(np.frombuffer(body[12:20], "<f4").tolist(), [1.5, -2.0])

    def test_presets_match_the_swift_presets(self):
        # The converter's presets must name the same architectures as SKDModels' presets.
        self.assertEqual(convert.PRESETS["restormer-s"]["dim"], 32)
        self.assertEqual(convert.PRESETS["drsformer-s"]["mefc"], False)
        self.assertEqual(convert.PRESETS["uformer-b"]["depths"], [1, 2, 8, 8, 2, 8, 8, 2, 1])


if __name__ == "__main__":
    unittest.main()
