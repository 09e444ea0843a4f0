"""`python -m stargan_keras.fid --paths A B` (the authors' `metrics.fid --paths`): the FID it prints is the one
computed directly from the features of the images read with PIL; bad folders and weights exit 2 on one line."""

import numpy as np
import pytest
from PIL import Image

from stargan_keras import __main__ as entry
from stargan_keras import fid as fid_command
from stargan_keras.metrics import fid
from stargan_keras.metrics.fid import FidFeatureExtractor, fid_from_features
from tests.harness.fid import save_random_keras_inception

SIZE = 16  # --img-size


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_random_keras_inception(tmp_path_factory.mktemp("inception") / "random_inception.weights.h5")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Two folders of small images of other sizes and modes (a grayscale one, one in a subfolder)."""
    root = tmp_path_factory.mktemp("fid_folders")
    rng = np.random.default_rng(0)
    real, fake = root / "real", root / "fake"
    (fake / "sub").mkdir(parents=True)
    real.mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (24, 30, 3), dtype=np.uint8)).save(real / f"{i}.png")
    Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8), mode="L").save(real / "gray.jpg")
    for i in range(2):
        Image.fromarray(rng.integers(60, 200, (16, 16, 3), dtype=np.uint8)).save(fake / f"{i}.png")
    Image.fromarray(rng.integers(0, 120, (40, 40, 3), dtype=np.uint8)).save(fake / "sub" / "deep.png")
    (fake / "notes.txt").write_text("not an image")
    return real, fake


def _read_like_the_authors(folder):
    """PIL: open, RGB, bilinear resize to --img-size (torchvision Resize of a PIL image), as uint8."""
    paths = sorted(p for p in folder.rglob("*") if p.suffix in (".png", ".jpg"))
    return np.stack([np.asarray(Image.open(p).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)) for p in paths])


@pytest.mark.slow
def test_prints_the_fid_of_the_features(folders, weights, capsys):
    real, fake = folders
    code = entry.main(["fid", "--paths", str(real), str(fake), "--img-size", str(SIZE), "--batch-size", "2",
                       "--inception-weights", str(weights)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"FID features of the 4 images of {real}" in captured.out  # progress is shown
    printed = float(captured.out.strip().splitlines()[-1].removeprefix("FID: "))

    extractor = FidFeatureExtractor("torchvision", weights)
    assert extractor.resize == "pil"
    expected = fid_from_features(extractor(_read_like_the_authors(real)), extractor(_read_like_the_authors(fake)))
    assert printed == pytest.approx(expected, rel=1e-5)
    assert printed > 0


def _error(argv, capsys):
    code = fid_command.main([*argv, "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    return err


def test_bad_folders_exit_2_naming_them(folders, tmp_path, capsys):
    real, _ = folders
    (tmp_path / "empty").mkdir()
    (tmp_path / "one").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "one" / "a.png")
    for folder, words in ((tmp_path / "missing", ["missing", "no such folder"]),
                          (tmp_path / "empty", ["empty", "found 0"]),
                          (tmp_path / "one", ["one", "at least 2", "found 1"])):
        err = _error(["--paths", str(real), str(folder)], capsys)
        assert all(word in err for word in words), err
    assert "--img-size 0" in _error(["--paths", str(real), str(real), "--img-size", "0"], capsys)


def test_bad_inception_choices_exit_2(folders, tmp_path, capsys):
    real, fake = folders
    paths = ["--paths", str(real), str(fake)]
    assert "keras" in _error([*paths, "--inception", "tf"], capsys)
    err = _error([*paths, "--inception-weights", str(tmp_path / "absent.pth")], capsys)
    assert "absent.pth" in err and "--inception keras" in err


@pytest.mark.parametrize("torch_installed", [False, True])
def test_missing_torch_or_download_names_the_fixes(folders, monkeypatch, capsys, torch_installed):
    """torchvision's weights are a PyTorch file: no torch, or no network, is one line naming three ways out."""
    import keras

    real_find_spec = fid.importlib.util.find_spec
    monkeypatch.setattr(fid.importlib.util, "find_spec", lambda name, *a: (object() if torch_installed else None)
                        if name == "torch" else real_find_spec(name, *a))

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    real, fake = folders
    err = _error(["--paths", str(real), str(fake)], capsys)
    fixes = ["--inception-weights PATH", "--inception keras"] + ([] if torch_installed else ["pip install torch=="])
    assert all(fix in err for fix in fixes), err
    assert ("URL fetch failure" in err) == torch_installed
