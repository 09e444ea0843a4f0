"""StarGAN v1's labelled data: the shapes attributes, CelebA and class folders on disk, joint mode, and the
training batches as a pure function of (seed, step)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from stargan_keras.core.config import ConfigError
from stargan_keras.data import shapes
from stargan_keras.v1.data import (LabelledImages, adopt_labels, fixed_test_batch, load_celeba, load_class_folders,
                                   load_labelled, make_eval_dataset, make_train_dataset, shapes_dataset)
from stargan_keras.v1 import labels
from tests.harness.v1 import make_tiny_v1_config

CELEBA_ATTRS = ["Bald", "Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
SELECTED = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
RAFD = ["angry", "contemptuous", "disgusted", "fearful", "happy", "neutral", "sad", "surprised"]


def _shapes_config(**overrides):
    fields = dict(dataset="shapes", image_size=16, d_repeat_num=2, c_dim=5, selected_attrs=[],
                  shapes_train_per_domain=6, shapes_val_per_domain=2, batch_size=4, seed=3)
    return make_tiny_v1_config(**{**fields, **overrides})


def _take(dataset, count):
    return [{key: value.numpy() for key, value in batch.items()} for batch in dataset.take(count)]


def test_shapes_attributes_describe_what_is_drawn():
    data = shapes_dataset(32, 20, 5, seed=1)
    assert data.label_names == ["circle", "square", "triangle", "red", "large"]
    assert data.exclusive == ["circle", "square", "triangle"]
    train = data.splits["train"]
    labels, images = train.labels, train.source.array
    assert labels.shape == (60, 5) and np.all(labels[:, :3].sum(axis=1) == 1)
    # The fill is read back from the pixels: red pixels where red is on, blue ones where it is off.
    factors = train.source.factors
    centre = np.round(factors["position"] * 32 - 0.5).astype(int)
    fill = images[np.arange(60), centre[:, 1], centre[:, 0]].astype(int)
    np.testing.assert_array_equal(fill[:, 0] > fill[:, 2], labels[:, 3] == 1)
    # Sizes: two separated ranges; the number of shape pixels orders them within each shape.
    large = labels[:, 4] == 1
    assert factors["size"][large].min() > factors["size"][~large].max()
    background = np.round(factors["background"] * 255)[:, None, None]
    area = np.sum(np.abs(images.astype(int) - background[..., None]).max(axis=-1) > 40, axis=(1, 2))
    for shape in range(3):
        of_shape = labels[:, shape] == 1
        assert area[of_shape & large].min() > area[of_shape & ~large].max()
    again = shapes_dataset(32, 20, 5, seed=1)
    np.testing.assert_array_equal(again.splits["test"].source.array, data.splits["test"].source.array)


def test_train_batches_are_a_pure_function_of_seed_and_step():
    config = _shapes_config()
    data = load_labelled(config)
    config = adopt_labels(config, data, {})
    batches = _take(make_train_dataset(config, data), 5)
    resumed = _take(make_train_dataset(config, data, start_step=3), 2)
    for expected, actual in zip(batches[3:], resumed):
        assert expected.keys() == actual.keys() == {"x_real", "c_org", "c_trg", "alpha"}
        for key in expected:
            np.testing.assert_array_equal(expected[key], actual[key], err_msg=key)
    other_seed = _take(make_train_dataset(config.replace(seed=4), data), 1)[0]
    assert not np.array_equal(other_seed["x_real"], batches[0]["x_real"])

    train = data.datasets[0].splits["train"]
    originals = train.source.array.astype(np.float32) / 127.5 - 1.0  # 16 px drawn, 16 px trained: no resize
    flips = 0
    for batch in batches:
        assert batch["x_real"].shape == (4, 16, 16, 3) and batch["c_org"].shape == (4, 5)
        assert np.all((batch["alpha"] >= 0) & (batch["alpha"] < 1))
        # c_trg: the labels of a permutation of the batch.
        assert sorted(map(tuple, batch["c_trg"])) == sorted(map(tuple, batch["c_org"]))
        for image, label in zip(batch["x_real"], batch["c_org"]):
            same = np.flatnonzero(np.all(np.abs(originals - image) < 1e-5, axis=(1, 2, 3)))
            mirrored = np.flatnonzero(np.all(np.abs(originals[:, :, ::-1] - image) < 1e-5, axis=(1, 2, 3)))
            found = np.concatenate([same, mirrored])
            assert len(found) and all(np.array_equal(train.labels[i], label) for i in found)
            flips += len(same) == 0
    assert 0 < flips < 20


@pytest.fixture
def small_test_split(monkeypatch):
    """CelebA's test split of 5 images instead of the authors' 1,999 (test_v1_labels checks theirs), so that a
    few files make both splits."""
    monkeypatch.setattr(labels, "CELEBA_TEST_IMAGES", 5)
    return 5


def _celeba(tmp_path, count=12, size=(40, 51), missing=()):
    """A CelebA-like tree: images/ of `count` small random PNGs and the attribute file."""
    rng = np.random.default_rng(0)
    values = rng.choice(["1", "-1"], size=(count, len(CELEBA_ATTRS)))
    root = tmp_path / "celeba"
    (root / "images").mkdir(parents=True)
    rows = []
    for i, row in enumerate(values, start=1):
        name = f"{i:06d}.png"
        rows.append(f"{name} " + " ".join(row))
        if i in missing:
            continue
        pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "images" / name)
    (root / "list_attr_celeba.txt").write_text("\n".join([str(count), " ".join(CELEBA_ATTRS), *rows]) + "\n")
    return root, rows


def test_celeba_split_labels_and_centre_crop(tmp_path, small_test_split):
    root, rows = _celeba(tmp_path, missing=(7,))
    data = load_celeba(tmp_path, SELECTED, crop=30, progress=False)
    shuffled = list(rows)  # the authors' split: random.seed(1234); random.shuffle(lines); the first ones test
    random.seed(1234)
    random.shuffle(shuffled)
    test_names = {row.split()[0] for row in shuffled[:small_test_split]}
    expected = [(row.split()[0], [float(row.split()[1 + CELEBA_ATTRS.index(a)] == "1") for a in SELECTED])
                for row in shuffled if row.split()[0] != "000007.png"]
    kept = [(path.rsplit("/", 1)[-1], labels.tolist()) for split in ("test", "train")
            for path, labels in zip(data.splits[split].source.paths, data.splits[split].labels)]
    assert kept == expected
    assert {path.rsplit("/", 1)[-1] for path in data.splits["test"].source.paths} == test_names - {"000007.png"}
    assert [bad.path.rsplit("/", 1)[-1] for bad in data.bad_files] == ["000007.png"]

    # The centre crop as torchvision's CenterCrop places it: top = round((51 - 30) / 2) = 10 (half to even).
    config = make_tiny_v1_config(image_size=30, d_repeat_num=1, c_dim=5, selected_attrs=SELECTED)
    images, labels = next(iter(make_eval_dataset(config, LabelledImages([data]), batch_size=3)))
    for image, label, path, want in zip(images.numpy(), labels.numpy(), data.splits["test"].source.paths,
                                        data.splits["test"].labels):
        pixels = np.asarray(Image.open(path), np.float32)
        np.testing.assert_allclose(image, pixels[10:40, 5:35] / 127.5 - 1.0, atol=1e-5)
        np.testing.assert_array_equal(label, want)


def test_celeba_is_found_under_data_dir_and_missing_files_are_named(tmp_path):
    from stargan_keras.data.domain_images import DatasetError

    with pytest.raises(DatasetError, match="celeba/images/ \\(or img_align_celeba/\\)"):
        load_celeba(tmp_path, SELECTED, crop=30, progress=False)


def _class_folders(root, names, per_class=2, size=(20, 12), splits=("train", "test")):
    rng = np.random.default_rng(1)
    for split in splits:
        for name in names:
            folder = root / split / name if split else root / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"{i}.png")


def test_class_folders_one_hot_labels_and_layouts(tmp_path):
    _class_folders(tmp_path / "split", ["b_happy", "a_sad", "c_angry"])
    data = load_class_folders(tmp_path / "split", crop=8, progress=False)
    assert data.label_names == ["a_sad", "b_happy", "c_angry"] and data.label_type == "categorical"
    for split in ("train", "test"):
        part = data.splits[split]
        for path, label in zip(part.source.paths, part.labels):
            assert label.tolist() == np.eye(3)[data.label_names.index(path.split("/")[-2])].tolist()
        assert f"/{split}/" in part.source.paths[0]
    _class_folders(tmp_path / "flat", ["x", "y"], splits=(None,))
    flat = load_class_folders(tmp_path / "flat", crop=8, progress=False)
    assert flat.label_names == ["x", "y"] and flat.splits["test"].source.paths == flat.splits["train"].source.paths

    # A crop larger than the image takes its shorter side: a centred 12 x 12 square of the 20 x 12 image.
    config = make_tiny_v1_config(image_size=12, d_repeat_num=1, c_dim=3, selected_attrs=[])
    images, _ = next(iter(make_eval_dataset(config, LabelledImages([load_class_folders(
        tmp_path / "split", crop=256, progress=False)]), batch_size=1)))
    pixels = np.asarray(Image.open(data.splits["test"].source.paths[0]), np.float32)
    np.testing.assert_allclose(images.numpy()[0], pixels[:, 4:16] / 127.5 - 1.0, atol=1e-5)


def test_adopting_the_data_labels_and_refusing_conflicting_flags(tmp_path):
    _class_folders(tmp_path / "faces", ["happy", "sad"])
    config = make_tiny_v1_config(dataset=str(tmp_path / "faces"), rafd_crop_size=0)
    data = load_labelled(config)
    adopted = adopt_labels(config, data, {})
    assert (adopted.model.c_dim, adopted.model.selected_attrs, adopted.model.label_type) == (2, ["happy", "sad"],
                                                                                   "categorical")
    with pytest.raises(ConfigError, match="--c-dim 4 does not match dataset"):
        adopt_labels(config, data, {"c_dim": 4})
    with pytest.raises(ConfigError, match="neither celeba, rafd, both, shapes nor an existing folder"):
        load_labelled(make_tiny_v1_config(dataset=str(tmp_path / "nowhere")))


def test_joint_mode_labels_masks_and_alternating_batches(tmp_path, small_test_split):
    """CelebA's 5 attributes and RaFD's 8 expressions: G's label is [c_celeba, c_rafd, mask], 15 wide; step k
    draws from dataset k % 2, with the other dataset's columns zero and its own mask bit set."""
    _celeba(tmp_path, size=(16, 16))
    _class_folders(tmp_path / "RaFD", RAFD, per_class=1, size=(16, 16))
    config = make_tiny_v1_config(dataset="both", data_dir=str(tmp_path), image_size=16, d_repeat_num=1, c_dim=5,
                                 c2_dim=8, selected_attrs=SELECTED + RAFD, celeba_crop_size=16, rafd_crop_size=16)
    data = load_labelled(config, progress=False)
    assert adopt_labels(config, data, {}) == config and data.joint
    assert (config.model.label_dim, config.model.num_classes) == (15, 13)
    celeba, rafd = data.model_labels(0, "train"), data.model_labels(1, "train")
    np.testing.assert_array_equal(celeba[:, :5], data.datasets[0].splits["train"].labels)
    assert np.all(celeba[:, 5:13] == 0) and np.all(celeba[:, 13:] == [1, 0])
    np.testing.assert_array_equal(rafd[:, 5:13], np.eye(8)[np.arange(8)])
    assert np.all(rafd[:, :5] == 0) and np.all(rafd[:, 13:] == [0, 1])
    for step, batch in enumerate(_take(make_train_dataset(config, data), 4)):
        mask = [1, 0] if step % 2 == 0 else [0, 1]
        for key in ("c_org", "c_trg"):
            assert batch[key].shape == (4, 15) and np.all(batch[key][:, 13:] == mask), (step, key)
            other = slice(5, 13) if step % 2 == 0 else slice(0, 5)
            assert np.all(batch[key][:, other] == 0)
    sample = fixed_test_batch(config, data, 3)
    assert sample["x_real"].shape == (3, 16, 16, 3) and np.all(sample["c_org"][:, 13:] == [1, 0])


def test_fixed_test_batch_spans_the_shapes(tmp_path):
    config = _shapes_config(shapes_val_per_domain=4)
    data = load_labelled(config)
    batch = fixed_test_batch(adopt_labels(config, data, {}), data, 6)
    assert set(np.argmax(batch["c_org"][:, :3], axis=1)) == {0, 1, 2}
    assert shapes.DOMAINS == ("circle", "square", "triangle")
