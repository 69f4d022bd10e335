#!/usr/bin/env python3
"""Writes the reference files that tests/test_io.c loads (run once; the outputs
are committed, so neither CI nor `make test` needs Python).

    python3 -m venv /tmp/v && /tmp/v/bin/pip install safetensors numpy
    /tmp/v/bin/python tests/data/make_reference.py      # from the repository root

The safetensors file is written by the real `safetensors` package (its numpy
front end, no torch), the .npy files by numpy itself, the IDX files by hand
from LeCun's format description. The values are listed again in test_io.c.
"""
import os
import struct

import numpy as np
from safetensors.numpy import save_file

HERE = os.path.dirname(os.path.abspath(__file__))


def path(name):
    return os.path.join(HERE, name)


def safetensors_reference():
    tensors = {
        # F32, 2-D (out, in) like an nde_linear weight
        "net.0.weight": np.array([[0.5, -1.25], [2.0, 3.75], [-0.125, 1e-3]], dtype=np.float32),
        # F64 (converted on load in a float build)
        "net.0.bias": np.array([1.0 / 3.0, -2.0 / 3.0, 1e10], dtype=np.float64),
        # F16
        "net.1.weight": np.array([[0.5, -2.0, 65504.0]], dtype=np.float16),
        "net.1.bias": np.array([-7.5], dtype=np.float32),
        # 4-D, like a conv2d weight (O, C, KH, KW)
        "conv.weight": (np.arange(8, dtype=np.float32) * 0.25 - 1.0).reshape(2, 1, 2, 2),
    }
    save_file(tensors, path("reference.safetensors"), metadata={"format": "pt", "source": "make_reference.py"})


def npy_reference():
    np.save(path("ref_f4.npy"), (np.arange(6, dtype=np.float32) - 2.5).reshape(2, 3))
    np.save(path("ref_f8.npy"), np.array([1.0 / 3.0, -1e-300, 1e30, 0.1], dtype=np.float64))
    np.save(path("ref_i4.npy"), np.array([[-3, 0, 7]], dtype=np.int32))
    np.save(path("ref_i8.npy"), np.array([-(2**40), 5], dtype=np.int64))
    np.save(path("ref_u1.npy"), np.array([0, 1, 128, 255], dtype=np.uint8).reshape(2, 2, 1))
    np.save(path("ref_f8_big.npy"), np.array([1.5, -2.25], dtype=">f8"))
    np.save(path("ref_fortran.npy"), np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
    np.save(path("ref_scalar.npy"), np.float64(42.0))
    with open(path("ref_f4_v2.npy"), "wb") as f:
        np.lib.format.write_array(f, np.array([1.0, 2.0, 3.0], dtype=np.float32), version=(2, 0))


def idx_reference():
    # two 3x2 images, unsigned bytes, big-endian sizes
    images = bytes([0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255])
    with open(path("ref_images.idx3-ubyte"), "wb") as f:
        f.write(bytes([0, 0, 0x08, 3]) + struct.pack(">III", 2, 3, 2) + images)
    with open(path("ref_labels.idx1-ubyte"), "wb") as f:
        f.write(bytes([0, 0, 0x08, 1]) + struct.pack(">I", 2) + bytes([7, 3]))
    # float32 data (type 0x0D), big-endian
    with open(path("ref_f32.idx"), "wb") as f:
        f.write(bytes([0, 0, 0x0D, 1]) + struct.pack(">I", 3) + struct.pack(">fff", 1.5, -0.25, 1e6))


if __name__ == "__main__":
    safetensors_reference()
    npy_reference()
    idx_reference()
