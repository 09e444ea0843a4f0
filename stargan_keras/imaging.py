"""Conversions at the edges: uint8 files and arrays outside, float32 in [-1, 1] inside the models.

One rounding rule everywhere, the authors' `save_image`: round(clip((x + 1) / 2, 0, 1) * 255).
The NumPy functions serve files and arrays; the `*_tensor` twins run inside graphs (serving,
tf.data) and compute the same values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def to_uint8(x) -> np.ndarray:
    """[-1, 1] floats -> uint8, as the authors save images: round(clip((x+1)/2, 0, 1) * 255)."""
    x = np.asarray(x, dtype=np.float32)
    return np.round(np.clip((x + 1.0) / 2.0, 0.0, 1.0) * 255.0).astype(np.uint8)


def from_uint8(u8) -> np.ndarray:
    """uint8 -> float32 in [-1, 1]."""
    return np.asarray(u8, dtype=np.float32) / 127.5 - 1.0


def to_uint8_tensor(x):
    """`to_uint8` as TensorFlow ops."""
    import tensorflow as tf

    x = tf.cast(x, tf.float32)
    return tf.cast(tf.round(tf.clip_by_value((x + 1.0) / 2.0, 0.0, 1.0) * 255.0), tf.uint8)


def from_uint8_tensor(u8):
    """`from_uint8` as TensorFlow ops (any real dtype holding values in [0, 255])."""
    import tensorflow as tf

    return tf.cast(u8, tf.float32) / 127.5 - 1.0


def open_rgb(path: str | Path) -> Image.Image:
    """Any image file (grayscale, RGBA, palette, CMYK...) as RGB; errors name the file."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read image {path}: {err}. Replace or remove this file.") from None


def load_image(path: str | Path, size: int | None = None) -> np.ndarray:
    """An image file as float32 [H, W, 3] in [-1, 1], resized (bilinear) to size x size if given."""
    image = open_rgb(path)
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    return from_uint8(np.asarray(image))


def save_image(path: str | Path, image) -> Path:
    """Save one image (uint8, or floats in [-1, 1]) as PNG/JPEG by the file's extension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(as_uint8(image)).save(path)
    return path


def as_uint8(image) -> np.ndarray:
    """uint8 images as they are, [-1, 1] floats through `to_uint8`."""
    array = np.asarray(image)
    return array if array.dtype == np.uint8 else to_uint8(array)


def make_grid(rows, pad: int = 2) -> np.ndarray:
    """Tile rows of equally sized images ([-1, 1] floats or uint8) into one uint8 image."""
    rows = [[as_uint8(im) for im in row] for row in rows]
    height, width = rows[0][0].shape[:2]
    num_cols = max(len(row) for row in rows)
    grid = np.full((len(rows) * (height + pad) + pad, num_cols * (width + pad) + pad, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            top, left = pad + r * (height + pad), pad + c * (width + pad)
            grid[top:top + height, left:left + width] = image
    return grid
