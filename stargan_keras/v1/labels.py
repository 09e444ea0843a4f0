"""StarGAN v1's labels: CelebA's attribute file with the authors' split, and the test-time target labels.

Both follow the authors' yunjey/stargan: `data_loader.py` (`CelebA.preprocess`) and
`solver.py` (`Solver.create_labels`).
"""

from __future__ import annotations

import difflib
import random
from pathlib import Path

import numpy as np

from stargan_keras.v1.config import CELEBA_HAIR_COLOURS, ModelConfig
from stargan_keras.data.domain_images import DatasetError

CELEBA_SPLIT_SEED = 1234
CELEBA_TEST_IMAGES = 1999  # the authors keep line i (0-based, after the shuffle) for testing while i + 1 < 2000
HAIR_COLOURS = tuple(CELEBA_HAIR_COLOURS)


def read_celeba_attributes(path: str | Path, selected_attrs: list[str]):
    """(train, test): lists of (filename, float32 labels of `selected_attrs`) from `list_attr_celeba.txt`.

    The file: a count line, a line of the 40 attribute names, then `filename v1 ... v40`
    with values +-1 (1 -> 1.0, -1 -> 0.0). As the authors, the data lines are shuffled by
    Python's `random` seeded with 1234 and the first 1,999 are the test set.
    """
    path = Path(path)
    try:
        lines = [line.rstrip() for line in path.read_text().splitlines()]
    except OSError as err:
        raise DatasetError(f"cannot read the CelebA attribute file {path} ({err.strerror}): pass the "
                           "list_attr_celeba.txt that comes with img_align_celeba/.") from None
    if len(lines) < 3:
        raise DatasetError(f"{path} is not CelebA's attribute file: it needs a count line, a line of attribute "
                           "names and one line per image.")
    names = lines[1].split()
    index = {name: i for i, name in enumerate(names)}
    unknown = [name for name in selected_attrs if name not in index]
    if unknown:
        close = {name: difflib.get_close_matches(name, names, n=1) for name in unknown}
        hints = "; ".join(f"{name}" + (f" (did you mean {c[0]}?)" if c else "") for name, c in close.items())
        raise DatasetError(f"--selected-attrs: {hints} not in {path}; its attributes: {', '.join(names)}.")
    columns = [index[name] for name in selected_attrs]
    data = [line for line in lines[2:] if line.strip()]
    random.Random(CELEBA_SPLIT_SEED).shuffle(data)  # the permutation of random.seed(1234); random.shuffle(...)
    train, test = [], []
    for i, line in enumerate(data):
        fields = line.split()
        if len(fields) != len(names) + 1:
            raise DatasetError(f"{path}: the line for {fields[0]} has {len(fields) - 1} values, expected "
                               f"{len(names)}.")
        labels = np.array([fields[1 + c] == "1" for c in columns], dtype=np.float32)
        (test if i < CELEBA_TEST_IMAGES else train).append((fields[0], labels))
    return train, test


def target_labels(c_org, selected_attrs: list[str], label_type: str = "attributes",
                  exclusive=HAIR_COLOURS) -> list[np.ndarray]:
    """The authors' test-time targets, one [N, c_dim] array per label: for attributes, one of the `exclusive`
    ones (their hair colours) is set and the others of that group cleared, and any other attribute is
    flipped; for categorical labels, every image is sent to class i."""
    c_org = np.asarray(c_org, dtype=np.float32)
    c_dim = c_org.shape[1]
    if label_type == "categorical":
        return [np.tile(np.eye(c_dim, dtype=np.float32)[i], (len(c_org), 1)) for i in range(c_dim)]
    hair = [i for i, name in enumerate(selected_attrs) if name in exclusive]
    targets = []
    for i in range(c_dim):
        c_trg = c_org.copy()
        if i in hair:
            c_trg[:, hair] = 0.0
            c_trg[:, i] = 1.0
        else:
            c_trg[:, i] = 1.0 - (c_trg[:, i] != 0)
        targets.append(c_trg)
    return targets


def model_target_labels(c_org, v1: ModelConfig) -> list[np.ndarray]:
    """The test-time targets in G's label layout, one per class (`v1.num_classes`): `target_labels` for one
    dataset; in joint mode each dataset's targets in its own columns, the other dataset's zero and its mask
    bit set, as the authors' `test_multi` builds them (for images of the other dataset, whose columns of
    this dataset are zero, the targets start from those zeros)."""
    c_org = np.asarray(c_org, dtype=np.float32)
    if not v1.c2_dim:
        return target_labels(c_org, v1.selected_attrs, v1.label_type, v1.exclusive_attrs)
    targets = []
    for j, part in enumerate(v1.label_slices):
        names = v1.selected_attrs[part.start:part.stop]
        for target in target_labels(c_org[:, part.start:part.stop], names, part.label_type, v1.exclusive_attrs):
            full = np.zeros((len(c_org), v1.label_dim), np.float32)
            full[:, part.start:part.stop] = target
            full[:, v1.num_classes + j] = 1.0
            targets.append(full)
    return targets
