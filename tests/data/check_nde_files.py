#!/usr/bin/env python3
"""By-hand check (not run by CI) that files written by nde are read by the
real Python packages:

    make build/test_io_f32 build/test_io_f64
    mkdir -p /tmp/ndex && NDE_IO_EXPORT_DIR=/tmp/ndex ./build/test_io_f32 && NDE_IO_EXPORT_DIR=/tmp/ndex ./build/test_io_f64
    /tmp/v/bin/python tests/data/check_nde_files.py /tmp/ndex    # venv with safetensors + numpy

Value i of parameter k is (i - 5 + 100 k) / 7 rounded to the file's dtype.
"""
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

SHAPES = {"layer.0.weight": (3, 4), "layer.0.bias": (3,), 'conv "odd" name': (2, 1, 2, 2)}


def expected(k, shape, dtype):
    n = int(np.prod(shape))
    return ((np.arange(n, dtype=np.float64) - 5 + 100 * k) / 7.0).astype(dtype).reshape(shape)


def main(d):
    for bits, dtype in ((32, np.float32), (64, np.float64)):
        path = f"{d}/nde_params_f{bits}.safetensors"
        tensors = load_file(path)
        assert set(tensors) == set(SHAPES), tensors.keys()
        for k, (name, shape) in enumerate(SHAPES.items()):
            t = tensors[name]
            assert t.dtype == dtype and t.shape == shape, (name, t.dtype, t.shape)
            assert np.array_equal(t, expected(k, shape, dtype)), name
        with safe_open(path, framework="numpy") as f:
            meta = f.metadata()
        assert meta["format"] == "pt" and meta["nde_real_bytes"] == str(bits // 8), meta
        a = np.load(f"{d}/nde_array_f{bits}.npy")
        assert a.dtype == dtype and a.shape == (2, 1, 2, 2) and a.flags.c_contiguous
        assert np.array_equal(a, expected(2, (2, 1, 2, 2), dtype))
        print(f"f{bits}: safetensors {sorted(tensors)} and .npy {a.shape} read back exactly; metadata {meta}")


if __name__ == "__main__":
    main(sys.argv[1])
