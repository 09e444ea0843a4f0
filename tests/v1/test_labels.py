"""CelebA's attribute file read with the authors' split, and the authors' test-time target labels."""

from __future__ import annotations

import random

import numpy as np
import pytest

from stargan_keras.data.domain_images import DatasetError
from stargan_keras.v1.labels import read_celeba_attributes, target_labels

ATTRS = ["Bald", "Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]


def _attribute_file(tmp_path, count=2050, seed=0):
    rng = np.random.default_rng(seed)
    values = rng.choice(["1", "-1"], size=(count, len(ATTRS)))
    rows = [f"{i:06d}.jpg " + " ".join(f"{v:>2}" for v in row) for i, row in enumerate(values, start=1)]
    path = tmp_path / "list_attr_celeba.txt"
    path.write_text("\n".join([str(count), " ".join(ATTRS), *rows]) + "\n")
    return path, rows


def test_the_authors_split_and_labels(tmp_path):
    path, rows = _attribute_file(tmp_path)
    selected = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
    train, test = read_celeba_attributes(path, selected)
    shuffled = list(rows)  # the authors' global-RNG shuffle
    random.seed(1234)
    random.shuffle(shuffled)
    assert len(test) == 1999 and len(train) == len(rows) - 1999
    assert [name for name, _ in test + train] == [row.split()[0] for row in shuffled]
    for (name, labels), row in zip(test + train, shuffled):
        values = row.split()[1:]
        assert labels.tolist() == [float(values[ATTRS.index(a)] == "1") for a in selected], name


def test_unknown_attributes_are_named_with_the_closest(tmp_path):
    path, _ = _attribute_file(tmp_path, count=5)
    with pytest.raises(DatasetError, match="Blonde_Hair \\(did you mean Blond_Hair\\?\\)"):
        read_celeba_attributes(path, ["Blonde_Hair"])


def test_test_time_targets():
    selected = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
    c_org = np.array([[1, 0, 0, 1, 0], [0, 0, 1, 0, 1]], np.float32)
    targets = target_labels(c_org, selected)
    assert len(targets) == 5
    np.testing.assert_array_equal(targets[1], [[0, 1, 0, 1, 0], [0, 1, 0, 0, 1]])  # blond, exclusively
    np.testing.assert_array_equal(targets[3], [[1, 0, 0, 0, 0], [0, 0, 1, 1, 1]])  # gender flipped
    categorical = target_labels(np.eye(3, dtype=np.float32)[[0, 2]], ["a", "b", "c"], "categorical")
    np.testing.assert_array_equal(categorical[1], [[0, 1, 0], [0, 1, 0]])
