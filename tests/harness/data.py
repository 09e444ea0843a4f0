"""Tiny image folders for the data tests, generated in the test's tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, rgb: np.ndarray, mode: str = "RGB", fmt: str | None = None) -> Path:
    """Save an RGB uint8 array converted to `mode` (L, RGBA, P, CMYK...) in `fmt` (by extension if None)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).convert(mode).save(path, format=fmt)
    return path


def solid(value, size: int = 16) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, np.uint8), (size, size, 3)).copy()


def coded_image(domain: int, index: int, size: int = 16) -> np.ndarray:
    """A flat colour saying which image it is: channel `domain` is 255, the next one is 10 * index.

    Flat images survive crops, flips and resizing unchanged, so a pipeline's output can be traced
    back to the file it came from.
    """
    value = [0, 0, 0]
    value[domain] = 255
    value[(domain + 1) % 3] = 10 * index
    return solid(value, size)


def decode_code(image: np.ndarray) -> tuple[int, int]:
    """(domain, index) of a coded_image output given as floats in [-1, 1]."""
    pixel = np.round((image.reshape(-1, 3).mean(0) + 1) * 127.5).astype(int)
    domain = int(np.argmax(pixel))
    return domain, int(round(pixel[(domain + 1) % 3] / 10))


def make_coded_folder(root: Path, counts: dict[str, int], val_counts: dict[str, int] | None = None,
                      size: int = 16) -> Path:
    """ROOT/train/<domain>/NNN.png of coded images (domain d = the d-th name), and val/ likewise."""
    for split, split_counts in (("train", counts), ("val", val_counts or {d: 1 for d in counts})):
        for d, (name, n) in enumerate(counts.items() if split == "train" else split_counts.items()):
            for i in range(n):
                write_image(root / split / name / f"{i:03d}.png", coded_image(d, i, size))
    return root
