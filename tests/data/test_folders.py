"""Folders of domain folders: layout errors name the folder, bad files are skipped and counted, odd modes read as RGB."""

import logging

import numpy as np
import pytest
from PIL import Image

from stargan_keras.v2.config import Config
from stargan_keras.data import DatasetError, load_dataset, make_eval_dataset
from stargan_keras.data.folders import load_folder
from tests.harness.data import make_coded_folder, solid, write_image


def test_valid_folder(tmp_path):
    root = make_coded_folder(tmp_path / "ds", {"b_dogs": 3, "a_cats": 2}, {"b_dogs": 1, "a_cats": 2})
    (root / "train" / "a_cats" / ".DS_Store").write_bytes(b"\0junk")
    (root / "train" / "a_cats" / "notes.txt").write_text("not an image")
    data = load_folder(root)
    assert data.domain_names == ["a_cats", "b_dogs"]  # sorted by name
    assert data.counts("train") == [2, 3] and data.counts("val") == [2, 1]
    assert data.bad_files == [] and data.bad_file_summary() == ""


def test_missing_root_and_missing_train(tmp_path):
    with pytest.raises(DatasetError, match=str(tmp_path / "nowhere")):
        load_folder(tmp_path / "nowhere")
    (tmp_path / "ds" / "val" / "a").mkdir(parents=True)
    with pytest.raises(DatasetError, match=str(tmp_path / "ds" / "train")):
        load_folder(tmp_path / "ds")


def test_fewer_than_two_domains_names_the_train_folder(tmp_path):
    root = make_coded_folder(tmp_path / "ds", {"only": 2})
    with pytest.raises(DatasetError, match=f"{root / 'train'} has 1 domain folder") as err:
        load_folder(root)
    assert "at least two" in str(err.value)


def test_empty_domain_folder_is_named(tmp_path):
    root = make_coded_folder(tmp_path / "ds", {"a": 2, "b": 2})
    (root / "train" / "c").mkdir()
    (root / "val" / "c").mkdir()
    with pytest.raises(DatasetError, match=f"domain folder {root / 'train' / 'c'} is empty"):
        load_folder(root)


def test_val_with_other_domains_names_the_val_folder(tmp_path):
    root = make_coded_folder(tmp_path / "ds", {"a": 2, "b": 2}, {"a": 1, "c": 1})
    with pytest.raises(DatasetError, match=f"{root / 'val'} has other domains") as err:
        load_folder(root)
    assert "missing ['b']" in str(err.value) and "extra ['c']" in str(err.value)


def test_layout_errors_come_before_any_decoding(tmp_path, monkeypatch):
    import stargan_keras.data.folders as folders

    monkeypatch.setattr(folders, "check_image", lambda path: pytest.fail(f"decoded {path} before the layout check"))
    root = make_coded_folder(tmp_path / "ds", {"a": 2, "b": 2}, {"a": 1})
    with pytest.raises(DatasetError):
        load_folder(root)


def test_bad_files_are_skipped_with_a_warning_and_counted(tmp_path, caplog):
    root = make_coded_folder(tmp_path / "ds", {"a": 3, "b": 3})
    good = (root / "train" / "a" / "000.png").read_bytes()
    truncated = root / "train" / "a" / "truncated.png"
    truncated.write_bytes(good[: len(good) // 2])
    not_an_image = root / "train" / "b" / "text.jpg"
    not_an_image.write_text("this is not a JPEG")
    empty = root / "val" / "b" / "empty.jpeg"
    empty.write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        data = load_folder(root)
    assert data.counts("train") == [3, 3] and data.counts("val") == [1, 1]
    assert sorted(bad.path for bad in data.bad_files) == sorted(map(str, [truncated, not_an_image, empty]))
    for path in (truncated, not_an_image, empty):
        assert str(path) in caplog.text
    summary = data.bad_file_summary()
    assert summary.startswith("3 image file(s)") and str(truncated) in summary


def test_a_domain_with_only_bad_files_fails_naming_it(tmp_path):
    root = make_coded_folder(tmp_path / "ds", {"a": 1, "b": 1})
    (root / "train" / "b" / "000.png").write_bytes(b"broken")
    with pytest.raises(DatasetError, match=f"no image in {root / 'train' / 'b'} could be decoded"):
        load_folder(root)


def test_test_folder_is_read_as_val_and_a_missing_val_falls_back_to_train(tmp_path, caplog):
    root = make_coded_folder(tmp_path / "v2", {"a": 2, "b": 2}, {"a": 1, "b": 1})
    (root / "val").rename(root / "test")
    assert load_folder(root).counts("val") == [1, 1]
    for path in (root / "test").rglob("*.png"):
        path.unlink()
    for folder in sorted((root / "test").rglob("*"), reverse=True):
        folder.rmdir()
    (root / "test").rmdir()
    with caplog.at_level(logging.WARNING):
        assert load_folder(root).counts("val") == [2, 2]
    assert "no val/ folder" in caplog.text


MODES = [("gray.jpg", "L", "JPEG"), ("gray.png", "L", "PNG"), ("rgba.png", "RGBA", "PNG"),
         ("palette.png", "P", "PNG"), ("cmyk.jpg", "CMYK", "JPEG"), ("disguised_gif.png", "P", "GIF")]


@pytest.mark.parametrize("name,mode,fmt", MODES)
def test_image_modes_decode_to_the_rgb_pil_sees(tmp_path, name, mode, fmt):
    size = 16
    yy, xx = np.mgrid[0:size, 0:size]
    smooth = np.stack([xx * 15, yy * 15, 255 - xx * 8], axis=-1).astype(np.uint8)  # gentle for JPEG
    root = tmp_path / "ds"
    path = write_image(root / "train" / "odd" / name, smooth, mode, fmt)
    write_image(root / "train" / "plain" / "x.png", solid(7, size))
    write_image(root / "val" / "odd" / "x.png", solid(7, size))
    write_image(root / "val" / "plain" / "x.png", solid(7, size))
    with Image.open(path) as image:
        assert image.mode == mode or fmt == "GIF"
        expected = np.asarray(image.convert("RGB"), np.float32)
    config = Config().replace(dataset=str(root), img_size=size, num_domains=2)
    data = load_dataset(config)
    assert data.bad_files == []
    assert data.converted == (1 if mode == "CMYK" or fmt == "GIF" else 0)  # the rest TF reads itself
    images, labels = next(iter(make_eval_dataset(config, data, split="train", domain=0)))
    assert images.shape == (1, size, size, 3) and labels.numpy().tolist() == [0]
    got = (images[0].numpy() + 1.0) * 127.5
    tolerance = 6.0 if fmt == "JPEG" else 0.01  # TF and PIL use different JPEG IDCT/upsampling
    np.testing.assert_allclose(got, expected, atol=tolerance)


def test_a_file_name_that_is_not_utf8_is_skipped_named_and_counted(tmp_path, caplog):
    import os

    root = make_coded_folder(tmp_path / "ds", {"a": 2, "b": 2})
    odd = os.path.join(os.fsencode(root / "train" / "a"), b"caf\xe9.png")  # Latin-1 bytes in the name
    Image.fromarray(solid([10, 20, 30])).save(os.fsdecode(odd), format="PNG")
    with caplog.at_level(logging.WARNING):
        data = load_folder(root)
    assert data.counts("train") == [2, 2]
    assert [bad.path.endswith("caf\\xe9.png") for bad in data.bad_files] == [True]
    assert "not valid UTF-8" in data.bad_files[0].reason
    summary = data.bad_file_summary()
    summary.encode("utf-8")  # printable
    assert "1 image file(s)" in summary and "caf\\xe9.png" in summary


def png_declaring(width: int, height: int) -> bytes:
    """A few hundred bytes of PNG whose header declares width x height RGB pixels (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compress(b"\0" * (1 + 3 * width) * 16)  # the first rows only: nothing past the header is read
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


def test_a_decompression_bomb_is_skipped_from_its_header_without_decoding(tmp_path):
    root = make_coded_folder(tmp_path / "ds", {"a": 2, "b": 2})
    bomb = root / "train" / "b" / "bomb.png"
    bomb.write_bytes(png_declaring(12000, 12000))
    assert bomb.stat().st_size < 100_000
    data = load_folder(root)
    assert data.counts("train") == [2, 2]
    (bad,) = data.bad_files
    assert bad.path.endswith("bomb.png") and "12000 x 12000 = 144,000,000 pixels, over the limit" in bad.reason
