"""Writes two of scikit-learn's bundled tabular data sets (no download) as
.npy files next to this script, for examples/ffjord.c:

    wine-train.npy (142, 13)  wine-test.npy (36, 13)    load_wine().data
    iris-train.npy (120, 4)   iris-test.npy (30, 4)     load_iris().data

float64, rows shuffled with numpy's RandomState(0) and split 80/20, columns
standardised with the training rows' mean and standard deviation (the
FFJORD tabular pipeline standardises likewise). Labels are dropped: these are
density-estimation sets.

Run once (the files are committed):
    python3 -m venv /tmp/skl && /tmp/skl/bin/pip install scikit-learn
    /tmp/skl/bin/python examples/data/make_tabular.py
"""
import os

import numpy as np
from sklearn.datasets import load_iris, load_wine

HERE = os.path.dirname(os.path.abspath(__file__))


def write(name, data):
    rows = np.random.RandomState(0).permutation(len(data))
    data = data[rows].astype(np.float64)
    n_train = int(round(0.8 * len(data)))
    train, test = data[:n_train], data[n_train:]
    mean, std = train.mean(axis=0), train.std(axis=0)
    train, test = (train - mean) / std, (test - mean) / std
    np.save(os.path.join(HERE, name + "-train.npy"), np.ascontiguousarray(train))
    np.save(os.path.join(HERE, name + "-test.npy"), np.ascontiguousarray(test))
    print(name, train.shape, test.shape)


def main():
    write("wine", load_wine().data)
    write("iris", load_iris().data)


if __name__ == "__main__":
    main()
