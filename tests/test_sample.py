"""`sample` on the authors' representative AFHQ images with a tiny model: every figure and video, and their layout."""

import json
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from stargan_keras.v2 import figures
from stargan_keras import sample as sm
from stargan_keras.core.model_dir import save_networks
from stargan_keras.data.folders import image_files
from stargan_keras.v2.inference import SAMPLE_PSIS, Translator
from stargan_keras.v2.networks import build_networks
from tests.harness.components import require
from tests.harness.v2 import TINY_DOMAINS

IMG = 32
PAD = 2  # imaging.make_grid's default padding
NAMES = list(TINY_DOMAINS)
FILES = ["reference.jpg", "latent_psi_0.5.jpg", "latent_psi_0.7.jpg", "latent_psi_1.0.jpg", "cycle.jpg"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_config):
    config = tiny_config(img_size=IMG)
    return save_networks(tmp_path_factory.mktemp("models") / "tiny", config, build_networks(config.model))


@pytest.fixture
def afhq(shared_dir):
    return shared_dir / "data" / "stargan_v2_representative" / "afhq"


def _grid_shape(rows: int, cols: int) -> tuple[int, int]:
    """(width, height) of a make_grid of rows x cols cells of IMG px."""
    return cols * (IMG + PAD) + PAD, rows * (IMG + PAD) + PAD


def _count(folder):
    return sum(len(image_files(folder / name)) for name in NAMES if (folder / name).is_dir())


@pytest.mark.slow
@pytest.mark.needs("ffmpeg")
def test_sample_writes_every_figure_and_video(model_dir, afhq, tmp_path, capsys):
    out = tmp_path / "out"
    code = sm.main(["--checkpoint", str(model_dir), "--src", str(afhq / "src"), "--ref", str(afhq / "ref"),
                    "--out", str(out), "--num-latent", "2", "--video-sources", "1", "--video-format", "mp4"])
    assert code == 0, capsys.readouterr().err
    n_src, n_ref = _count(afhq / "src"), _count(afhq / "ref")
    expected = {"reference.jpg": _grid_shape(n_src + 1, n_ref + 1),
                "cycle.jpg": _grid_shape(4, n_src),
                **{f"latent_psi_{psi}.jpg": _grid_shape(1 + len(NAMES) * 2, n_src) for psi in SAMPLE_PSIS}}
    for name in FILES:
        with Image.open(out / name) as image:
            assert image.size == expected[name], name
    # Each pair of consecutive references of one domain (latent codes of one domain) is one interpolation; the
    # last frame is held TAIL_FRAMES more.
    interpolation = len(figures.interpolation_alphas())
    pairs = n_ref - sum(1 for name in NAMES if image_files(afhq / "ref" / name))
    margin = figures.SLIDE_MARGIN * IMG // 256
    assert video_frames(out / "video_latent.mp4") == (len(NAMES) * (2 - 1) * interpolation + figures.TAIL_FRAMES,
                                                      (IMG, 2 * IMG))  # sources above translations
    assert video_frames(out / "video_ref.mp4") == (pairs * interpolation + figures.TAIL_FRAMES,
                                                   (2 * IMG + margin + margin % 2, 2 * IMG))  # plus the sliding references


@pytest.fixture
def small_folders(afhq, tmp_path):
    """One source and two references per domain, copied from the shared images."""
    for role, count in (("src", 1), ("ref", 2)):
        for name in NAMES:
            folder = tmp_path / role / name
            folder.mkdir(parents=True)
            for path in image_files(afhq / role / name)[:count]:
                shutil.copy(path, folder / path.name)
    return tmp_path / "src", tmp_path / "ref"


@pytest.mark.slow
def test_same_seed_same_files_other_seed_other_latents(model_dir, small_folders, tmp_path):
    translator = Translator.from_directory(model_dir)  # compiled once for the three runs
    src, ref = small_folders

    def latent_grid(seed, name):
        written = figures.sample(translator, src, ref, tmp_path / name, seed=seed, num_latent=2, video_sources=1,
                            video_format="gif", progress=False)
        with Image.open(written["latent_psi_1.0"]) as image:
            return np.asarray(image)

    first, again, other = latent_grid(0, "a"), latent_grid(0, "b"), latent_grid(1, "c")
    np.testing.assert_array_equal(first, again)
    assert np.abs(first.astype(int) - other.astype(int)).max() > 0


def test_folder_names_must_be_the_model_domains(model_dir, small_folders, tmp_path, capsys):
    src, ref = small_folders
    (ref / "cat").rename(ref / "horse")
    code = sm.main(["--checkpoint", str(model_dir), "--src", str(src), "--ref", str(ref), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "'horse'" in err and "cat, dog, wild" in err and str(ref) in err


def test_alphas_are_sigmoid_spaced_and_held():
    alphas = figures.interpolation_alphas()
    ramp = 1.0 / (1.0 + np.exp(-np.arange(-5.0, 5.0, 0.5)))
    np.testing.assert_allclose(alphas, np.concatenate([[0.0], ramp, np.ones(figures.TAIL_FRAMES)]), rtol=1e-6)
    assert np.all(np.diff(alphas) >= 0)


def test_reference_column_slides_up():
    previous = np.full((4, 4, 3), 100, np.uint8)
    following = np.full((4, 4, 3), 200, np.uint8)
    start, end = figures._slide(previous, following, 0.0, 2), figures._slide(previous, following, 1.0, 2)
    assert start.shape == end.shape == (8, 6, 3)
    assert (start[:4] == 0).all() and (start[4:, :4] == 100).all()  # previous beside the translations
    assert (end[:4, :4] == 100).all() and (end[4:, :4] == 200).all()  # previous beside the sources, next below
    assert (end[:, 4:] == 0).all()


def test_cycle_pairs_each_source_with_another_domain():
    y_src, y_ref = np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2])
    picks = figures.pair_references(y_src, y_ref)
    assert all(y_ref[p] != y for p, y in zip(picks, y_src))


def video_frames(path) -> tuple[int, tuple[int, int]]:
    """(frame count, (width, height)) of a video file: Pillow's for a GIF, ffprobe's (decoding every frame) else."""
    if path.suffix == ".gif":
        with Image.open(path) as video:
            return video.n_frames, video.size
    require("ffmpeg")
    probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                            "stream=nb_read_frames,width,height", "-of", "json", str(path)],
                           capture_output=True, text=True, check=True)
    stream = json.loads(probe.stdout)["streams"][0]
    return int(stream["nb_read_frames"]), (stream["width"], stream["height"])


@pytest.mark.parametrize("video_format", ["gif", pytest.param("mp4", marks=pytest.mark.needs("ffmpeg"))])
def test_a_video_has_every_frame_at_its_size(video_format, tmp_path):
    """Three frames of 47 x 33 px: an MP4's sides are padded to even numbers (yuv420p), a GIF's are kept."""
    frames = [np.full((33, 47, 3), value, np.uint8) for value in (0, 128, 255)]
    path = figures.write_video(tmp_path / "clip", iter(frames), video_format=video_format)
    assert path.suffix == f".{video_format}"
    assert video_frames(path) == (3, (48, 34) if video_format == "mp4" else (47, 33))


def test_a_stargan_v1_model_is_sampled_as_the_authors_test_mode(tmp_path, capsys):
    """The test split of the model's own dataset: each input, then one translation per target label vector."""
    from stargan_keras.families import load_config
    from stargan_keras.v1.labels import model_target_labels
    from stargan_keras.v1.networks import build_networks as build_v1_networks

    config = load_config("v1_shapes").replace(image_size=16, d_repeat_num=2, g_conv_dim=4, d_conv_dim=4,
                                              g_repeat_num=1, shapes_train_per_domain=4, shapes_val_per_domain=2)
    model_dir = save_networks(tmp_path / "model", config, build_v1_networks(config.model))
    assert sm.main(["--checkpoint", str(model_dir), "--out", str(tmp_path / "out"), "--rows", "3",
                        "--quiet"]) == 0
    targets = len(model_target_labels(np.zeros((1, config.model.c_dim), np.float32), config.model))
    with Image.open(tmp_path / "out" / "translations.jpg") as grid:
        width, height = grid.size
    assert round(width / height * 3) == 1 + targets  # 3 rows of 16 px cells: the input and each target's translation
    assert (tmp_path / "out" / "interpolation.jpg").is_file()
    assert "translations" in capsys.readouterr().out
