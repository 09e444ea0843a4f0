"""The one pixel limit, read from headers before anything is decoded: `imaging`'s helpers (files and bytes, for
sample/evaluate inputs, the client and the training data scan) and the serving graphs' `header_pixels` (what
the decoders of encoded JPEG/PNG/GIF/BMP requests would allocate)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import io
import struct

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from stargan_keras.core import imaging
from stargan_keras.core.errors import UserError
from stargan_keras.core.imaging import ImageError, check_image_file, check_image_pixels, image_size_from_header
from stargan_keras.serving import checks
from tests.harness.serving import bmp_declaring, encoded, gif_frame_bomb, jpeg_declaring, png_bomb


def test_the_default_is_well_above_4k_images():
    assert imaging.MAX_IMAGE_PIXELS >= 4 * 3840 * 2160
    check_image_pixels(7680, 4320, "an 8K frame")  # fits


def test_check_image_pixels_names_the_file_its_size_and_the_limit():
    with pytest.raises(ImageError) as info:
        check_image_pixels(12000, 12000, "photos/cat.png")
    message = str(info.value)
    assert "photos/cat.png is 12000 x 12000 = 144,000,000 pixels" in message
    assert f"limit of {imaging.MAX_IMAGE_PIXELS:,} pixels" in message
    assert isinstance(info.value, UserError) and isinstance(info.value, ValueError)  # exit 2 in every command
    check_image_pixels(100, 100, "x", limit=10_000)
    with pytest.raises(ImageError, match="limit of 9,999 pixels"):
        check_image_pixels(100, 100, "x", limit=9_999)


def test_sizes_come_from_headers_for_files_and_bytes(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bomb(9000, 9000))  # 81 M pixels: over the limit, under Pillow's own
    assert image_size_from_header(path) == (9000, 9000)
    assert image_size_from_header(jpeg_declaring(3000, 2000)) == (3000, 2000)
    with pytest.raises(ImageError, match=rf"{path} is 9000 x 9000 = 81,000,000 pixels, over the limit"):
        check_image_file(path)
    with pytest.raises(ImageError, match=rf"{path} is 9000 x 9000"):
        imaging.load_image(path, 32)  # sample, evaluate, tflite --image: checked before decoding
    with pytest.raises(ImageError, match="image data is 9000 x 9000"):
        imaging.open_rgb(path.read_bytes())
    assert check_image_file(path, limit=81_000_000) == (9000, 9000)


def test_an_image_over_pillows_own_limit_is_the_same_error(tmp_path):
    """Pillow refuses images over twice its MAX_IMAGE_PIXELS in `Image.open` itself, before telling the size."""
    path = tmp_path / "huge.png"
    path.write_bytes(png_bomb(20000, 20000))
    for call in (lambda: image_size_from_header(path), lambda: imaging.load_image(path)):
        with pytest.raises(ImageError, match=rf"{path} declares 400,000,000 pixels, over the limit of 67,108,864"):
            call()


def test_unreadable_files_are_image_errors_naming_them(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not an image")
    with pytest.raises(ImageError, match=rf"cannot read image {path}"):
        imaging.load_image(path)
    with pytest.raises(ImageError, match="cannot read image .*missing.png"):
        check_image_file(tmp_path / "missing.png")


# -- in the serving graphs --------------------------------------------------------------------------------------
header_pixels = tf.function(checks.header_pixels, input_signature=[tf.TensorSpec([], tf.string)])


def animated_gif(sizes):
    """A GIF with one frame per (width, height), each placed at the top left of the first frame's canvas."""
    frames = [Image.new("P", size, i % 2) for i, size in enumerate(sizes)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], optimize=False, disposal=1)
    return buffer.getvalue()


def test_header_pixels_is_what_the_decoder_allocates():
    image = np.random.default_rng(0).integers(0, 256, (23, 37, 3), dtype=np.uint8)
    for fmt in ("PNG", "JPEG", "BMP", "GIF"):
        data = encoded(image, fmt)
        assert int(header_pixels(data)) == 37 * 23, fmt
        assert tf.io.decode_image(data, expand_animations=False).shape[:2] == (23, 37)
    assert int(header_pixels(png_bomb(20000, 20000))) == 400_000_000
    assert int(header_pixels(jpeg_declaring(60000, 50000))) == 3_000_000_000
    assert int(header_pixels(bmp_declaring(20000, -30000))) == 600_000_000  # negative height: top-down rows
    # GIF: the frames, not only the logical screen: giflib holds every frame at its own size.
    assert int(header_pixels(gif_frame_bomb(1000))) == 1_000_000
    assert int(header_pixels(animated_gif([(40, 30)] * 5))) == 5 * 40 * 30
    data = bytearray(animated_gif([(40, 30), (40, 30)]))
    data[6:10] = struct.pack("<HH", 4000, 3000)  # a logical screen larger than the frames
    assert int(header_pixels(bytes(data))) == 12_000_000


def test_gif_walk_skips_extensions_and_colour_tables_and_stops_at_the_end():
    gif = animated_gif([(16, 8), (16, 8), (16, 8)])  # global table, graphics control and NETSCAPE extensions
    assert int(header_pixels(gif)) == 3 * 16 * 8
    assert int(header_pixels(gif[:-1])) == 3 * 16 * 8  # without its trailer
    assert int(header_pixels(gif[:40])) >= 0  # truncated anywhere: no error here, the decoder rejects it
    # A chain of one-byte sub-blocks (the walk's worst case) is followed in a few vector steps.
    screen = b"GIF89a" + struct.pack("<HHBBB", 10, 10, 0, 0, 0)
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 10, 10, 0) + b"\x08" + b"\x01\x00" * 100_000 + b"\x00"
    big = b"\x2c" + struct.pack("<HHHHB", 0, 0, 20000, 20000, 0) + b"\x08\x01\x00\x00"
    assert int(header_pixels(screen + frame + big + b"\x3b")) == 100 + 400_000_000


def test_malformed_headers_give_zero_for_the_decoder_to_reject():
    assert int(header_pixels(b"\x89PNG this is not a PNG")) == 0
    assert int(header_pixels(b"BM")) == 0
    assert int(header_pixels(b"GIF8")) == 0
