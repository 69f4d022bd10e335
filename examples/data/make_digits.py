"""Writes scikit-learn's bundled 8x8 digits (1797 images, no download) as
MNIST-style IDX files next to this script:

    digits-train-images-idx3-ubyte  (1437, 8, 8) u8    digits-train-labels-idx1-ubyte (1437,) u8
    digits-test-images-idx3-ubyte   (360, 8, 8)  u8    digits-test-labels-idx1-ubyte  (360,)  u8

The pixels of load_digits() are integers 0..16; they are stored as
round(v * 255 / 16) so that the examples read digits and MNIST alike (divide
by 255). The split is by position: the first 1437 images (80 %) train, the
last 360 test (load_digits keeps the writers in order, so the test images
come mostly from writers not seen in training).

Run once (the files are committed):
    python3 -m venv /tmp/skl && /tmp/skl/bin/pip install scikit-learn
    /tmp/skl/bin/python examples/data/make_digits.py
"""
import os
import struct

import numpy as np
from sklearn.datasets import load_digits

HERE = os.path.dirname(os.path.abspath(__file__))
NUM_TRAIN = 1437


def write_idx(path, array):
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    with open(path, "wb") as f:
        f.write(header)
        f.write(array.tobytes())


def main():
    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    labels = digits.target.astype(np.uint8)
    assert images.shape == (1797, 8, 8) and labels.shape == (1797,)
    splits = {"train": slice(0, NUM_TRAIN), "test": slice(NUM_TRAIN, None)}
    for name, part in splits.items():
        write_idx(os.path.join(HERE, "digits-%s-images-idx3-ubyte" % name), images[part])
        write_idx(os.path.join(HERE, "digits-%s-labels-idx1-ubyte" % name), labels[part])
        counts = np.bincount(labels[part], minlength=10)
        print(name, images[part].shape, "labels per class", counts.tolist())


if __name__ == "__main__":
    main()
