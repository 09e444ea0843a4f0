"""The tf.data pipelines: balanced sampling, reference pairs from y_trg, the paper's augmentation,
batches that are a pure function of (seed, step), and the fixed-order evaluation stream."""

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from stargan_keras.v2.config import Config
from stargan_keras.data import DatasetError, fixed_val_batch, load_dataset, make_eval_dataset, make_train_dataset
from tests.harness.data import decode_code, make_coded_folder, write_image

COUNTS = {"a": 2, "b": 5, "c": 20}  # deliberately imbalanced


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory):
    root = make_coded_folder(tmp_path_factory.mktemp("data") / "imbalanced", COUNTS, {"a": 2, "b": 3, "c": 1})
    config = Config().replace(dataset=str(root), img_size=16, num_domains=3, latent_dim=4, batch_size=30, seed=11)
    return config, load_dataset(config)


def batches(config, data, n, start_step=0):
    return [{k: v.numpy() for k, v in b.items()} for b in make_train_dataset(config, data, start_step).take(n)]


@pytest.fixture(scope="module")
def draws(imbalanced):
    config, data = imbalanced
    return batches(config, data, 100)  # 3,000 samples


def test_batch_structure(imbalanced, draws):
    config, _ = imbalanced
    batch = draws[0]
    assert set(batch) == {"x_src", "y_src", "x_ref", "x_ref2", "y_trg", "z_trg", "z_trg2"}
    for key in ("x_src", "x_ref", "x_ref2"):
        assert batch[key].shape == (30, 16, 16, 3) and batch[key].dtype == np.float32
        assert batch[key].min() >= -1.0 and batch[key].max() <= 1.0
    for key in ("y_src", "y_trg"):
        assert batch[key].shape == (30,) and batch[key].dtype == np.int32
        assert set(batch[key]) <= {0, 1, 2}
    z = np.concatenate([np.concatenate([b["z_trg"], b["z_trg2"]]) for b in draws])
    assert z.shape == (6000, config.model.latent_dim) and z.dtype == np.float32
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1.0) < 0.03
    assert not np.allclose(batch["z_trg"], batch["z_trg2"])


def test_both_streams_are_domain_balanced(draws):
    for key in ("y_src", "y_trg"):
        labels = np.concatenate([b[key] for b in draws])
        shares = np.bincount(labels, minlength=3) / len(labels)
        np.testing.assert_allclose(shares, 1 / 3, atol=0.03, err_msg=key)


def test_images_match_labels_and_every_image_of_a_domain_is_drawn_evenly(draws):
    seen = {d: [] for d in range(3)}
    for batch in draws:
        for x_key, y_key in (("x_src", "y_src"), ("x_ref", "y_trg"), ("x_ref2", "y_trg")):
            for image, label in zip(batch[x_key], batch[y_key]):
                domain, index = decode_code(image)
                assert domain == label, f"{x_key} from domain {domain} but {y_key} is {label}"
                seen[domain].append(index)
    for d, count in enumerate(COUNTS.values()):
        shares = np.bincount(seen[d], minlength=count) / len(seen[d])
        assert len(shares) == count
        np.testing.assert_allclose(shares, 1 / count, atol=max(0.03, 0.5 / count))


def test_reference_pairs_vary_within_the_target_domain(draws):
    pairs = [(decode_code(a), decode_code(b)) for batch in draws for a, b in zip(batch["x_ref"], batch["x_ref2"])]
    assert all(a[0] == b[0] for a, b in pairs)
    assert sum(a != b for a, b in pairs) > len(pairs) // 2


def test_same_seed_and_step_give_the_same_batch_and_resume_is_exact(imbalanced, draws):
    config, data = imbalanced
    again = batches(config, data, 3)
    for a, b in zip(again, draws[:3]):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    resumed = batches(config, data, 2, start_step=7)
    for a, b in zip(resumed, draws[7:9]):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    other = batches(config.replace(seed=12), data, 1)[0]
    assert not np.array_equal(other["y_src"], draws[0]["y_src"])
    assert not np.allclose(other["z_trg"], draws[0]["z_trg"])


def test_shapes_batches_without_crop_are_the_images_or_their_mirror():
    config = Config().replace(dataset="shapes", img_size=16, num_domains=3, batch_size=16, rrc_prob=0.0,
                              shapes_train_per_domain=5, shapes_val_per_domain=2)
    data = load_dataset(config)
    originals = {(d, i): (source.array[i] / 127.5 - 1.0) for d, source in enumerate(data.splits["train"])
                 for i in range(len(source))}
    flips = []
    for batch in batches(config, data, 10):
        for image, label in zip(batch["x_src"], batch["y_src"]):
            match = [(np.allclose(image, o, atol=1e-6), np.allclose(image, o[:, ::-1], atol=1e-6))
                     for (d, _), o in originals.items() if d == label]
            assert any(same or mirrored for same, mirrored in match)
            flips.append(not any(same for same, _ in match))
    assert 0.35 < np.mean(flips) < 0.65


def test_random_resized_crop_follows_the_papers_ranges(tmp_path):
    """An image whose pixels encode their own coordinates tells which box each output was cropped from."""
    size = 64
    yy, xx = np.mgrid[0:size, 0:size]
    ramp = np.stack([xx * 4, yy * 4, np.zeros_like(xx)], axis=-1).astype(np.uint8)
    root = tmp_path / "ramp"
    for split, domain in itertools.product(("train", "val"), ("a", "b")):
        write_image(root / split / domain / "ramp.png", ramp)
    config = Config().replace(dataset=str(root), img_size=size, num_domains=2, batch_size=50, rrc_prob=0.5)
    data = load_dataset(config)
    cropped, areas, ratios = [], [], []
    for batch in batches(config, data, 8):
        for image in batch["x_src"]:
            pixels = (image + 1.0) * 127.5 / 4  # source coordinates at each output pixel
            if pixels[0, 0, 0] > pixels[0, -1, 0]:
                pixels = pixels[:, ::-1]  # undo the flip
            is_cropped = not np.allclose(pixels[..., :2], np.stack([xx, yy], -1), atol=0.02)
            cropped.append(is_cropped)
            if is_cropped:
                width = pixels[0, -1, 0] - pixels[0, 0, 0] + 1
                height = pixels[-1, 0, 1] - pixels[0, 0, 1] + 1
                areas.append(width * height / size ** 2)
                ratios.append(width / height)
    assert 0.4 < np.mean(cropped) < 0.6
    # Resampling blurs the box edges by about a pixel, hence the small margins.
    assert 0.8 - 0.06 < min(areas) and max(areas) <= 1.0 + 1e-6
    assert 0.9 - 0.04 < min(ratios) and max(ratios) < 1.1 + 0.04
    assert max(areas) - min(areas) > 0.12 and max(ratios) - min(ratios) > 0.12


def test_eval_dataset_is_the_val_images_in_order(imbalanced):
    config, data = imbalanced
    images, labels = [], []
    for x, y in make_eval_dataset(config, data, batch_size=4):
        images.extend(x.numpy())
        labels.extend(y.numpy())
    expected = [(d, i) for d, n in enumerate([2, 3, 1]) for i in range(n)]
    assert [decode_code(x) for x in images] == expected
    assert labels == [d for d, _ in expected]
    only_b = [decode_code(x.numpy()) for x, _ in make_eval_dataset(config, data, split="train", domain=1).unbatch()]
    assert only_b == [(1, i) for i in range(5)]


def test_fixed_val_batch_is_fixed_and_covers_the_domains(imbalanced):
    config, data = imbalanced
    first, second = fixed_val_batch(config, data, 7), fixed_val_batch(config, data, 7)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    assert first["x_src"].shape == (7, 16, 16, 3) and first["x_ref"].shape == (7, 16, 16, 3)
    assert first["y_src"].tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert all(s != r for s, r in zip(first["y_src"], first["y_ref"]))
    assert [decode_code(x)[0] for x in first["x_ref"]] == first["y_ref"].tolist()


def test_shapes_eval_images_are_the_arrays():
    config = Config().replace(dataset="shapes", img_size=16, num_domains=3, shapes_train_per_domain=2,
                              shapes_val_per_domain=3)
    data = load_dataset(config)
    x, y = next(iter(make_eval_dataset(config, data, batch_size=9)))
    expected = np.concatenate([source.array for source in data.splits["val"]]) / 127.5 - 1.0
    np.testing.assert_allclose(x.numpy(), expected, atol=1e-6)
    assert y.numpy().tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_dataset_resolution_errors(tmp_path, imbalanced):
    with pytest.raises(DatasetError, match="'no_such_set'.*" + str(tmp_path / "no_such_set")):
        load_dataset(Config().replace(dataset="no_such_set", data_dir=str(tmp_path)))
    config, data = imbalanced
    relative = Config().replace(dataset="imbalanced", data_dir=str(Path(config.data.dataset).parent))
    assert load_dataset(relative).counts() == list(COUNTS.values())
    with pytest.raises(DatasetError, match="--num-domains is 2 but dataset .* has 3 domains"):
        make_train_dataset(config.replace(num_domains=2), data)


def test_large_steps_and_batch_one(imbalanced):
    config, data = imbalanced
    batch = batches(config.replace(batch_size=1), data, 1, start_step=2**40)[0]
    assert batch["x_src"].shape == (1, 16, 16, 3) and math.isfinite(float(batch["z_trg"].sum()))
