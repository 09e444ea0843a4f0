"""The synthetic shapes set: deterministic, and its images show exactly the factors it reports."""

import numpy as np
import pytest

from stargan_keras.data import shapes
from stargan_keras.data.shapes import DOMAINS, PALETTE, STRIPES, generate_shapes, shapes_domain_images

SIZE = 64


@pytest.fixture(scope="module")
def data():
    return generate_shapes(40, img_size=SIZE, seed=3)


def test_arrays_and_labels(data):
    n = 40 * len(DOMAINS)
    assert data.images.shape == (n, SIZE, SIZE, 3) and data.images.dtype == np.uint8
    assert data.labels.dtype == np.int32
    np.testing.assert_array_equal(data.labels, np.repeat(np.arange(len(DOMAINS)), 40))
    assert set(data.factors) == {"position", "background", "colour", "size", "stripes"}
    for value in data.factors.values():
        assert len(value) == n


def test_deterministic_from_seed_and_split():
    a, b = generate_shapes(10, 32, seed=5), generate_shapes(10, 32, seed=5)
    np.testing.assert_array_equal(a.images, b.images)
    for key in a.factors:
        np.testing.assert_array_equal(a.factors[key], b.factors[key])
    other_seed = generate_shapes(10, 32, seed=6)
    val = generate_shapes(10, 32, seed=5, split="val")
    assert not np.array_equal(a.factors["position"], other_seed.factors["position"])
    assert not np.array_equal(a.factors["position"], val.factors["position"])


def test_same_scenes_at_any_size():
    small, large = generate_shapes(8, 16, seed=1), generate_shapes(8, 128, seed=1)
    for key in small.factors:
        np.testing.assert_array_equal(small.factors[key], large.factors[key])
    assert large.images.shape[1:] == (128, 128, 3)


def test_content_and_style_factors_are_independent_of_the_domain():
    data = generate_shapes(600, 16, seed=0)
    for d in range(len(DOMAINS)):
        mine = data.labels == d
        assert np.bincount(data.factors["colour"][mine], minlength=len(PALETTE)).min() > 60
        assert np.bincount(data.factors["stripes"][mine], minlength=len(STRIPES)).min() > 150
        assert abs(data.factors["position"][mine].mean() - 0.5) < 0.02


def _coverage(image, background):
    """Pixels more than half-way from the background to the fill (any channel): the shape's inside."""
    diff = np.abs(image.astype(np.float32) - background).max(axis=-1)
    return diff > diff.max() / 2


def test_background_position_size_and_colour_are_what_the_factors_say(data):
    grey = np.round(data.factors["background"] * 255)
    # The corners are far from every shape: background shade.
    np.testing.assert_allclose(data.images[:, 0, 0, :], np.repeat(grey[:, None], 3, axis=1), atol=0.51)
    solid = np.flatnonzero(data.factors["stripes"] == STRIPES.index("solid"))
    assert len(solid) > 20
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    for i in solid:
        inside = _coverage(data.images[i], grey[i])
        centroid = np.array([xs[inside].mean(), ys[inside].mean()]) / SIZE
        np.testing.assert_allclose(centroid, data.factors["position"][i], atol=0.5 / SIZE)
        r = data.factors["size"][i] * SIZE
        area = {"circle": np.pi * r ** 2,
                "square": (2 * shapes.SQUARE_HALF_SIDE * r) ** 2,
                "triangle": 3 * np.sqrt(3) / 4 * (shapes.TRIANGLE_CIRCUMRADIUS * r) ** 2}[DOMAINS[data.labels[i]]]
        assert inside.sum() == pytest.approx(area, rel=0.06)
        cx, cy = (data.factors["position"][i] * SIZE).astype(int)
        np.testing.assert_array_equal(data.images[i, cy, cx], PALETTE[data.factors["colour"][i]])


def test_stripes_run_the_way_the_factor_says(data):
    for i in range(len(data.labels)):
        pattern = STRIPES[data.factors["stripes"][i]]
        cx, cy = (data.factors["position"][i] * SIZE).astype(int)
        patch = data.images[i, cy - 4:cy + 4, cx - 4:cx + 4].astype(int)  # well inside every shape
        colour = PALETTE[data.factors["colour"][i]].astype(int)
        light = np.round(colour + (255 - colour) * shapes.STRIPE_LIGHTEN)
        assert np.all((np.abs(patch - colour).max(-1) <= 1) | (np.abs(patch - light).max(-1) <= 1))
        rows_constant = np.all(patch == patch[:, :1], axis=(1, 2)).all()
        cols_constant = np.all(patch == patch[:1, :], axis=(0, 2)).all()
        if pattern == "solid":
            assert rows_constant and cols_constant
        elif pattern == "horizontal":
            assert rows_constant and not cols_constant
        else:
            assert cols_constant and not rows_constant


def test_domain_images_keep_factors_per_domain():
    data = shapes_domain_images(16, train_per_domain=7, val_per_domain=3, seed=2)
    assert data.domain_names == list(DOMAINS)
    assert data.counts("train") == [7, 7, 7] and data.counts("val") == [3, 3, 3]
    reference = generate_shapes(7, 16, seed=2)
    for d, source in enumerate(data.splits["train"]):
        np.testing.assert_array_equal(source.array, reference.images[reference.labels == d])
        np.testing.assert_array_equal(source.factors["colour"], reference.factors["colour"][reference.labels == d])
