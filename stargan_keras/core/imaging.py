"""Conversions at the edges: uint8 files and arrays outside, float32 in [-1, 1] inside the models.

One rounding rule everywhere, the authors' `save_image`: round(clip((x + 1) / 2, 0, 1) * 255).
The NumPy functions serve files and arrays; the `*_tensor` twins run inside graphs (serving,
tf.data) and compute the same values.

Image files are opened with a pixel limit checked from the header, before anything is
decoded (`MAX_IMAGE_PIXELS`): a small file can declare a huge image (a decompression
bomb), and decoding it would take gigabytes.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from stargan_keras.core.errors import UserError

# The largest width x height of an image file that is decoded: 8192 x 8192, eight times a 4K UHD frame
# (3840 x 2160). Set it here (or `export --max-image-pixels` for a served model) to change it.
MAX_IMAGE_PIXELS = 64 * 2**20


# Pillow warns as it opens an image over its own limit (PIL.Image.MAX_IMAGE_PIXELS); the checks here replace that
# warning with an error naming the file. Filtered once, here: `warnings.catch_warnings` is not thread-safe.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class ImageError(UserError, ValueError):
    """An image file that cannot be used (unreadable, or over the pixel limit); the message names it."""


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


def check_image_pixels(width: int, height: int, what, limit: int | None = None) -> None:
    """Fail with an ImageError naming `what` when width x height is over `limit` (default MAX_IMAGE_PIXELS)."""
    limit = MAX_IMAGE_PIXELS if limit is None else limit
    if width * height > limit:
        raise ImageError(f"{what} is {width} x {height} = {width * height:,} pixels, over the limit of {limit:,} "
                         "pixels (stargan_keras.core.imaging.MAX_IMAGE_PIXELS, which guards against decompression "
                         "bombs): scale it down.")


def image_size_from_header(source, what=None, limit: int | None = None) -> tuple[int, int]:
    """(width, height) of an image file (a path or its bytes) from its header, decoding nothing.

    Raises ImageError for data that is not an image Pillow reads, and for an image over
    Pillow's own bomb limit (twice `PIL.Image.MAX_IMAGE_PIXELS`, which stops `Image.open`
    before it gives the size); `what` names the file in messages.
    """
    with _opened(source, what, limit) as image:
        return image.size


def check_image_file(source, what=None, limit: int | None = None) -> tuple[int, int]:
    """An image file's (width, height) from its header, after `check_image_pixels`: nothing is decoded."""
    width, height = image_size_from_header(source, what, limit)
    check_image_pixels(width, height, _name(source, what), limit)
    return width, height


def open_rgb(source, what=None, limit: int | None = None) -> Image.Image:
    """Any image file or its bytes (grayscale, RGBA, palette, CMYK...) as RGB, if its header declares at most
    `limit` pixels (default MAX_IMAGE_PIXELS); errors name the file (or `what`)."""
    with _opened(source, what, limit) as image:
        check_image_pixels(*image.size, _name(source, what), limit)
        try:
            return image.convert("RGB")
        except (OSError, ValueError) as err:
            raise ImageError(f"cannot read image {_name(source, what)}: {err}. Replace or remove this file.") from None


def _name(source, what) -> str:
    return what or ("image data" if isinstance(source, bytes) else str(source))


@contextlib.contextmanager
def _opened(source, what, limit):
    """`Image.open` (which reads the header only), its errors as ImageErrors naming the file."""
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    except Image.DecompressionBombError as err:  # over twice Pillow's own limit: the size is only in its message
        found = re.search(r"\((\d+) pixels\)", str(err))
        pixels = f"{int(found.group(1)):,}" if found else "too many"
        limit = min(MAX_IMAGE_PIXELS if limit is None else limit, 2 * Image.MAX_IMAGE_PIXELS)
        raise ImageError(f"{_name(source, what)} declares {pixels} pixels, over the limit of {limit:,} pixels "
                         "(decompression bomb protection): scale it down.") from None
    except (OSError, ValueError) as err:
        raise ImageError(f"cannot read image {_name(source, what)}: {err}. Replace or remove this file.") from None
    with image:
        yield image


def load_uint8(source, size: int | None = None) -> np.ndarray:
    """An image file (a path or its bytes) as uint8 [H, W, 3], resized to size x size if given with PIL's
    bilinear filter on the uint8 image, as the authors' loaders do (torchvision `Resize` of a PIL image)."""
    image = open_rgb(source)  # checks the pixel limit before decoding
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    return np.asarray(image)


def load_image(path: str | Path, size: int | None = None) -> np.ndarray:
    """An image file as float32 [H, W, 3] in [-1, 1], resized (bilinear) to size x size if given."""
    return from_uint8(load_uint8(path, size))


def resize_uint8(images, size: int) -> np.ndarray:
    """uint8 images [N, H, W, 3] -> [N, size, size, 3], each resized by PIL's bilinear filter (`load_uint8`'s)."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 RGB images [N, H, W, 3]; got {images.dtype} {images.shape}.")
    if images.shape[1:3] == (size, size):
        return images
    out = np.empty((len(images), size, size, 3), np.uint8)
    for index, image in enumerate(images):
        out[index] = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
    return out


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
