"""`python -m stargan_keras.align`: the authors' face alignment, end to end and against NumPy transcriptions."""

import shutil

import numpy as np
import pytest
from PIL import Image

from stargan_keras import align
from stargan_keras.face.alignment import (LEFT_EYE, RIGHT_EYE, landmarks_from_heatmaps, mirror_pad,
                                          similarity_transform, warp_lanczos)
from tests.harness.components import require

CELEBA_SOURCES = "data/stargan_v2_representative/celeba_hq/src"
PER_DOMAIN = 2


# clovaai/stargan-v2 core/wing.py, transcribed for the test from the authors' formulas.
def authors_transform(landmarks, reference):
    def translate(points, sign):
        matrix = np.eye(3)
        matrix[:2, 2] = sign * points.mean(axis=0)
        return matrix

    def xaxis(points):
        eye_left = points[list(range(60, 68)) + [96]].mean(axis=0)
        eye_right = points[list(range(68, 76)) + [97]].mean(axis=0)
        mouth_left, mouth_right = points[76], points[82]
        xp = eye_right - eye_left
        yp = (eye_left + eye_right) * 0.5 - (mouth_left + mouth_right) * 0.5
        axis = xp - np.array([yp[1], -yp[0]])
        return axis / np.linalg.norm(axis)

    vec_x, vec_y = xaxis(landmarks), xaxis(reference)
    c = np.dot(vec_x, vec_y)
    s = np.sqrt(1 - c * c) * np.sign(vec_x[0] * vec_y[1] - vec_x[1] * vec_y[0])
    rotation = np.array(((c, -s, 0), (s, c, 0), (0, 0, 1)))
    x_norms = np.linalg.norm(landmarks - landmarks.mean(axis=0), axis=1)
    y_norms = np.linalg.norm(reference - reference.mean(axis=0), axis=1)
    scale = np.eye(3)
    scale[0, 0] = scale[1, 1] = (y_norms / x_norms)[[96, 97, 76, 82]].mean()
    return translate(reference, 1) @ scale @ rotation @ translate(landmarks, -1)


def authors_landmarks(heat):
    """core/wing.py `get_preds_fromhm` on one [98, 64, 64] heatmap stack, loop for loop."""
    preds = np.zeros((heat.shape[0], 2))
    for j, hm in enumerate(heat):
        idx = int(np.argmax(hm)) + 1
        preds[j] = ((idx - 1) % hm.shape[1] + 1, np.floor((idx - 1) / hm.shape[0]) + 1)
        px, py = int(preds[j, 0]) - 1, int(preds[j, 1]) - 1
        if 0 < px < 63 and 0 < py < 63:
            diff = np.array([hm[py, px + 1] - hm[py, px - 1], hm[py + 1, px] - hm[py - 1, px]])
            preds[j] += np.sign(diff) * 0.25
    return preds - 0.5


def synthetic_mean_landmarks(seed=0):
    """98 points of a 256 px face: eyes at y 110, mouth corners at y 185, the rest scattered over the face."""
    rng = np.random.default_rng(seed)
    mean = rng.uniform(70, 190, (98, 2))
    mean[list(LEFT_EYE)] = rng.normal((90, 110), 4, (len(LEFT_EYE), 2))
    mean[list(RIGHT_EYE)] = rng.normal((166, 110), 4, (len(RIGHT_EYE), 2))
    mean[76], mean[82] = (100, 185), (156, 185)
    return mean.astype(np.float32)


def test_transform_matrix_equals_the_authors_formulas():
    reference = synthetic_mean_landmarks().astype(np.float64)
    rng = np.random.default_rng(1)
    for _ in range(5):
        angle, zoom = rng.uniform(-0.6, 0.6), rng.uniform(0.5, 2.0)
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        landmarks = (reference - 128) @ rotation.T * zoom + rng.uniform(50, 300, 2) + rng.normal(0, 3, (98, 2))
        got, want = similarity_transform(landmarks, reference), authors_transform(landmarks, reference)
        np.testing.assert_allclose(got, want, rtol=0, atol=5e-12)  # measured 4.7e-13
        moved = (got[:2, :2] @ landmarks.T).T + got[:2, 2]  # lands on the reference, up to the noise
        assert np.abs(moved - reference).mean() < 10


def test_landmarks_equal_the_authors_argmax_and_quarter_pixel_refinement():
    rng = np.random.default_rng(2)
    heat = rng.uniform(0, 1, (2, 98, 64, 64)).astype(np.float32)
    heat[0, 0, 0, 10] = heat[0, 1, 63, 63] = heat[1, 2, 30, 63] = 2.0  # peaks on the border: no refinement
    got = landmarks_from_heatmaps(heat.transpose(0, 2, 3, 1))
    for n in range(2):
        np.testing.assert_allclose(got[n], authors_landmarks(heat[n]), rtol=0, atol=0)  # measured: equal
    assert tuple(got[0, 0]) == (10.5, 0.5)


def test_mirror_pad_keeps_the_image_in_the_middle_and_moves_the_landmarks():
    image = np.random.default_rng(3).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    padded, moved = mirror_pad(image, np.array([[10.0, 20.0]]))
    assert padded.shape == (256, 256, 3)
    np.testing.assert_array_equal(padded[64:192, 64:192], image)
    assert tuple(moved[0]) == (74.0, 84.0)
    reflected = np.pad(image, ((64, 64), (64, 64), (0, 0)), mode="reflect").astype(np.float64)
    assert np.abs(padded[:8, :8] - reflected[:8, :8]).mean() > 20  # the corners are the blurred copy


def test_lanczos_warp_of_integer_moves_copies_pixels():
    image = np.random.default_rng(4).uniform(0, 255, (40, 40, 3))
    np.testing.assert_allclose(warp_lanczos(image, np.eye(3), 32), image[:32, :32], atol=5e-13)  # measured 4.3e-14
    shift = np.array([[1.0, 0, 3], [0, 1, 5], [0, 0, 1]])  # content moves right 3, down 5
    moved = warp_lanczos(image, shift, 32)
    np.testing.assert_allclose(moved[5:, 3:], image[:27, :29], atol=5e-13)  # measured 4.3e-14
    assert np.abs(moved[:5]).max() < 1e-9 and np.abs(moved[:, :3]).max() < 1e-9  # no source pixels there


@pytest.fixture(scope="module")
def wing_and_mean(tmp_path_factory):
    """A random-weight wing.ckpt (the PyTorch reference's) and a synthetic celeba_lm_mean.npz."""
    torch = require("torch")
    torch.set_num_threads(1)
    from tests.references import torch_fan as ref

    directory = tmp_path_factory.mktemp("align_files")
    wing = ref.save_wing_checkpoint(ref.randomize(ref.TorchFAN(), seed=0), directory / "wing.ckpt")
    mean = directory / "celeba_lm_mean.npz"
    np.savez(mean, mean=synthetic_mean_landmarks())
    return wing, mean


def _flags(source, output, wing, mean, *extra):
    return ["--input", str(source), "--output", str(output), "--fan-checkpoint", str(wing),
            "--landmarks-mean", str(mean), "--quiet", *extra]


@pytest.mark.slow
def test_align_command_on_celeba_hq_samples(shared_dir, wing_and_mean, tmp_path, capsys):
    wing, mean = wing_and_mean
    source = tmp_path / "faces"
    for domain in ("female", "male"):
        (source / domain).mkdir(parents=True)
        for path in sorted((shared_dir / CELEBA_SOURCES / domain).glob("*.jpg"))[:PER_DOMAIN]:
            shutil.copy(path, source / domain / path.name)
    (source / "male" / "broken.jpg").write_bytes(b"not a jpeg")
    (source / "notes.txt").write_text("not an image")
    inputs = sorted(p.relative_to(source) for p in source.rglob("*.jpg") if p.name != "broken.jpg")
    output = tmp_path / "aligned"

    assert align.main(_flags(source, output, wing, mean, "--img-size", "128", "--batch-size", "3")) == 0
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1
    assert f"aligned {len(inputs)} images" in summary[0]
    assert "skipped 1 unreadable" in summary[0] and "broken.jpg" in summary[0]
    written = sorted(p.relative_to(output) for p in output.rglob("*") if p.is_file())
    assert written == inputs
    for path in written:
        with Image.open(output / path) as image:
            assert image.size == (128, 128) and image.mode == "RGB"
    assert (source / "male" / "broken.jpg").read_bytes() == b"not a jpeg"

    before = {p: (output / p).read_bytes() for p in written}
    assert align.main(_flags(source, output, wing, mean)) == 0  # a second run keeps what is there
    assert f"aligned 0 images into {output}; kept {len(inputs)} already there" in capsys.readouterr().out
    assert {p: (output / p).read_bytes() for p in written} == before


def _expect_usage_error(argv, capsys, *fragments):
    assert align.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err


def test_align_errors_name_the_flag(tmp_path, capsys):
    source = tmp_path / "faces"
    source.mkdir()
    Image.new("RGB", (64, 64)).save(source / "a.png")
    mean = tmp_path / "mean.npz"
    np.savez(mean, mean=synthetic_mean_landmarks())
    wing = tmp_path / "wing.ckpt"
    wing.write_bytes(b"")
    _expect_usage_error(_flags(source, tmp_path / "out", tmp_path / "nowhere.ckpt", mean), capsys,
                        "--fan-checkpoint", "nowhere.ckpt", "wing.ckpt?dl=1")
    _expect_usage_error(_flags(source, source / "aligned", wing, mean), capsys, "--output", "overlaps --input")
    _expect_usage_error(_flags(tmp_path / "none", tmp_path / "out", wing, mean), capsys, "--input")
    _expect_usage_error(_flags(source, tmp_path / "out", wing, tmp_path / "none.npz"), capsys,
                        "--landmarks-mean", "celeba_lm_mean.npz")
    np.savez(tmp_path / "bad.npz", mean=np.zeros((68, 2)))
    _expect_usage_error(_flags(source, tmp_path / "out", wing, tmp_path / "bad.npz"), capsys,
                        "--landmarks-mean", "(68, 2)")
    _expect_usage_error(_flags(source, tmp_path / "out", wing, mean, "--img-size", "32"), capsys, "--img-size")
    _expect_usage_error(_flags(source, tmp_path / "out", wing, mean), capsys, "--fan-checkpoint", "empty")
    with pytest.raises(SystemExit) as info:
        align.main(["--input", str(source), "--output", str(tmp_path / "out"), "--fan-checkpoint", str(wing)])
    assert info.value.code == 2 and "--landmarks-mean" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and sorted(p.name for p in source.iterdir()) == ["a.png"]
