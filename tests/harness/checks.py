"""Comparisons the tests of several packages share: training logs against a PyTorch reference, served images
against the Translator's, smooth test images."""

from __future__ import annotations

import numpy as np

from stargan_keras.core.imaging import to_uint8

# uint8 levels: a float this close to k + 0.5 may round either way once optimized; measured 2.7e-4 (the farthest
# float from k + 0.5 that rounded otherwise, over tests/serving's signature, export and gRPC and tests/v1's serving)
BOUNDARY = 2.5e-3


CONVERSION_RTOL = 3e-5  # of the reference output's largest value; measured 3.7e-6 (v1 G, 64 px)


def assert_converted(ours, theirs, what: str):
    """A converted network's output within CONVERSION_RTOL of the PyTorch reference's largest value (float32
    sums in another order); the reference output must not be degenerate."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    scale = float(np.abs(theirs).max())
    assert ours.shape == theirs.shape and scale > 1e-3, what
    error = float(np.abs(ours - theirs).max()) / scale
    print(f"{what}: max error {error:.2e} of the reference's largest value {scale:.3g}")
    assert error <= CONVERSION_RTOL, f"{what}: {error:.2e}"


def assert_close_logs(actual: dict, expected: dict, rtol: float):
    assert set(actual) == set(expected)
    for key, value in expected.items():
        assert abs(float(actual[key]) - value) <= rtol * abs(value), f"{key}: {float(actual[key])} vs {value}"


def assert_quantized(actual, floats):
    """Served uint8 images are the Translator's [-1, 1] floats quantized by `imaging.to_uint8`: equal, except
    where a float lies within BOUNDARY levels of a rounding boundary. The served graph and the Translator's
    functions are optimized differently (Grappler, oneDNN), which moves a float by a few ulps."""
    floats = np.asarray(floats)
    expected, actual = to_uint8(floats), np.asarray(actual)
    levels = np.clip((floats + 1.0) / 2.0, 0.0, 1.0) * 255.0
    near = np.abs(levels - np.floor(levels) - 0.5) < BOUNDARY
    assert actual.shape == expected.shape and actual.dtype == np.uint8
    print(f"quantized: {np.count_nonzero(actual != expected)} of {actual.size} differ, {np.count_nonzero(near)} near")
    np.testing.assert_array_equal(actual[~near], expected[~near])
    assert np.all(np.abs(actual[near].astype(int) - expected[near].astype(int)) <= 1)
    assert np.mean(near) < 0.01 and expected.std() > 1, "a reference too flat for the comparison to prove much"


STYLE_RTOL = 4e-6  # of the largest code; measured 4.1e-7


def assert_style_codes(actual, expected):
    """Style codes within float32 rounding of the Translator's (summation order may differ, see above)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    error = float(np.abs(actual - expected).max()) / float(np.abs(expected).max())
    print(f"style codes: max |diff| {error:.2e} of the largest code")
    assert actual.shape == expected.shape and error <= STYLE_RTOL, error
    assert np.std(expected) > 0.01


def smooth_images(n, size, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    out = []
    for _ in range(n):
        a = rng.uniform(-1, 1, (3, 2))
        out.append(np.stack([np.clip(0.5 + 0.5 * (a[c, 0] * xx + a[c, 1] * yy), 0, 1) for c in range(3)], -1))
    return np.round(np.stack(out) * 255).astype(np.uint8)
