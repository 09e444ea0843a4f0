"""FID: the Fréchet distance against closed forms, the trace-term shortcut of `fid_from_features`,
the feature extractor's input pipeline, and the torchvision InceptionV3 port against a hand-written
PyTorch Inception3 (`tests/references/torch_metrics.py`)."""

import keras
import numpy as np
import pytest
from PIL import Image

from stargan_keras.core.imaging import load_uint8, resize_uint8, to_uint8
from stargan_keras.metrics import convert_weights, fid, inception
from stargan_keras.metrics.fid import (FidFeatureExtractor, InceptionWeightsError, feature_statistics,
                                       fid_from_features, frechet_distance)
from stargan_keras.core.torch_io import StateDictError
from tests.harness.fid import needs_torch, save_random_torch_inception


def _analytic_commuting(mu1, mu2, eig1, eig2):
    """Gaussians whose covariances share eigenvectors: the trace term is sum (√a - √b)²."""
    return float(np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(eig1) - np.sqrt(eig2)) ** 2))


def _psd_sqrt(matrix):
    values, vectors = np.linalg.eigh(matrix)
    return vectors @ np.diag(np.sqrt(np.clip(values, 0, None))) @ vectors.T


def test_identical_sets_give_zero():
    features = np.random.default_rng(0).normal(size=(500, 32)) * np.linspace(0.1, 3, 32)
    mu, sigma = feature_statistics(features)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6


def test_feature_statistics_are_mean_and_unbiased_covariance():
    features = np.random.default_rng(1).normal(size=(50, 4)).astype(np.float32)
    mu, sigma = feature_statistics(features)
    centered = features.astype(np.float64) - features.astype(np.float64).sum(0) / 50
    assert mu.dtype == sigma.dtype == np.float64
    np.testing.assert_allclose(mu, features.astype(np.float64).sum(0) / 50, atol=1e-12)
    np.testing.assert_allclose(sigma, sum(np.outer(r, r) for r in centered) / 49, atol=1e-12)
    with pytest.raises(ValueError, match="at least 2"):
        feature_statistics(features[:1])


def test_diagonal_gaussians():
    rng = np.random.default_rng(2)
    mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
    a, b = rng.uniform(0.1, 4, 16), rng.uniform(0.1, 4, 16)
    value = frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert abs(value - _analytic_commuting(mu1, mu2, a, b)) < 1e-4


def test_commuting_full_covariances():
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.normal(size=(24, 24)))
    a, b = rng.uniform(0.05, 5, 24), rng.uniform(0.05, 5, 24)
    mu1, mu2 = rng.normal(size=24), rng.normal(size=24)
    value = frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert abs(value - _analytic_commuting(mu1, mu2, a, b)) < 1e-4


def test_non_commuting_2x2():
    """For 2x2 S1 S2 (positive eigenvalues): tr √(S1 S2) = √(tr(S1 S2) + 2 √(det S1 det S2))."""
    s1 = np.array([[2.0, 0.7], [0.7, 1.0]])
    s2 = np.array([[0.5, -0.3], [-0.3, 3.0]])
    mu1, mu2 = np.array([1.0, -2.0]), np.array([0.5, 0.5])
    trace_sqrt = np.sqrt(np.trace(s1 @ s2) + 2 * np.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt
    assert abs(frechet_distance(mu1, s1, mu2, s2) - expected) < 1e-4


@pytest.mark.filterwarnings("ignore:Matrix is singular")
def test_singular_covariances_stay_finite():
    """Fewer samples than dimensions: rank-deficient covariances (the eps·I fallback's case)."""
    rng = np.random.default_rng(5)
    mu1, s1 = feature_statistics(rng.normal(size=(8, 64)))
    mu2, s2 = feature_statistics(rng.normal(size=(8, 64)) + 1.0)
    root = _psd_sqrt(s1)
    trace_sqrt = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(root @ s2 @ root), 0, None)))
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt
    assert abs(frechet_distance(mu1, s1, mu2, s2) - expected) < 1e-4
    zero = np.zeros((3, 3))
    assert abs(frechet_distance(np.ones(3), zero, np.zeros(3), zero) - 3.0) < 1e-6


def test_non_finite_square_root_retries_with_an_offset(monkeypatch):
    real_sqrtm, calls = fid.linalg.sqrtm, []

    def failing_once(matrix):
        calls.append(matrix)
        return np.full_like(matrix, np.nan) if len(calls) == 1 else real_sqrtm(matrix)

    monkeypatch.setattr(fid.linalg, "sqrtm", failing_once)
    a, b = np.array([1.0, 4.0, 0.0]), np.array([9.0, 1.0, 0.0])
    with pytest.warns(UserWarning, match="singular"):
        value = frechet_distance(np.zeros(3), np.diag(a), np.zeros(3), np.diag(b), eps=1e-6)
    np.testing.assert_allclose(calls[1], np.diag((a + 1e-6) * (b + 1e-6)))
    assert abs(value - _analytic_commuting(np.zeros(3), np.zeros(3), a, b)) < 1e-4


def test_large_imaginary_part_is_an_error():
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), -np.eye(3))
    with pytest.raises(ValueError, match="do not match"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def _fid_reference(real, fake):
    """||mu1 - mu2||² + tr S1 + tr S2 - 2 sum sqrt(eig(S1 S2)): the eigenvalues of S1 S2 are real and >= 0."""
    mu1, s1 = feature_statistics(real)
    mu2, s2 = feature_statistics(fake)
    eig = np.clip(np.linalg.eigvals(s1 @ s2).real, 0.0, None)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * np.sum(np.sqrt(eig)))


@pytest.mark.parametrize("n_real, n_fake", [(5, 7), (40, 6), (60, 50)])
def test_fid_from_features_matches_the_definition(n_real, n_fake):
    rng = np.random.default_rng(n_real)
    dim = 12
    real = rng.standard_normal((n_real, dim)) @ rng.standard_normal((dim, dim))
    fake = rng.standard_normal((n_fake, dim)) * 0.7 + 0.3
    assert fid_from_features(real, fake) == pytest.approx(_fid_reference(real, fake), rel=1e-6, abs=1e-8)
    assert fid_from_features(real, real) == pytest.approx(0.0, abs=1e-8)


# Feature extractors (random weights: nothing can be downloaded here).

@pytest.fixture(scope="module")
def keras_extractor():
    return FidFeatureExtractor("keras", weights=None, batch_size=2)


@pytest.mark.slow
def test_keras_features_shape(keras_extractor):
    images = np.random.default_rng(6).uniform(-1, 1, (3, 32, 48, 3)).astype(np.float32)
    features = keras_extractor(images)
    assert features.shape == (3, 2048) and np.isfinite(features).all()
    as_uint8 = np.round((images[:1] + 1) * 127.5).astype(np.uint8)
    np.testing.assert_allclose(keras_extractor(as_uint8),
                               keras_extractor(as_uint8.astype(np.float32) / 127.5 - 1),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size", [64, 512])
def test_resize_is_pil_bilinear_and_keeps_the_keras_range(keras_extractor, size):
    """Upsampling and (antialiased) downsampling match PIL's bilinear resize, which the
    authors' loader uses; Keras' InceptionV3 takes [-1, 1], our images' range, unchanged."""
    images = np.random.default_rng(size).uniform(-1, 1, (1, size, size, 3)).astype(np.float32)
    x = keras_extractor.preprocess(images).numpy()
    assert x.shape == (1, 299, 299, 3)
    assert -1.0 - 1e-6 <= x.min() and x.max() <= 1.0 + 1e-6
    for channel in range(3):
        pil = Image.fromarray(images[0, :, :, channel], mode="F").resize((299, 299), Image.BILINEAR)
        np.testing.assert_allclose(x[0, :, :, channel], np.asarray(pil), atol=1e-4)


@pytest.fixture(scope="module")
def torchvision_extractor():
    """The default extractor (torchvision network, the authors' uint8 + PIL path), random weights."""
    return FidFeatureExtractor(weights=None, batch_size=2)


def test_torchvision_preprocessing_is_imagenet_normalisation_of_the_quantized_image(torchvision_extractor):
    assert (torchvision_extractor.inception, torchvision_extractor.resize) == ("torchvision", "pil")
    values = np.array([-1.0, 0.2, 1.0], np.float32)
    x = torchvision_extractor.preprocess(np.broadcast_to(values, (2, 40, 40, 3))).numpy()
    quantized = np.array([0, 153, 255]) / 255  # 0.2 -> (0.2 + 1) / 2 * 255 = 153
    expected = (quantized - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    assert x.shape == (2, 299, 299, 3)
    np.testing.assert_allclose(x, np.broadcast_to(expected, x.shape), atol=1e-6)
    assert torchvision_extractor(np.zeros((2, 40, 40, 3), np.float32)).shape == (2, 2048)


def _rounding_rule(x):
    """The project's rule, written out: round(clamp((x + 1) / 2, 0, 1) * 255) in float32, ties to even.
    (torchvision's save_image, behind the authors' PNGs, rounds ties up: they differ on exact ties only.)"""
    scaled = np.minimum(np.maximum((np.asarray(x, np.float32) + np.float32(1)) / np.float32(2), 0), 1)
    return np.rint(scaled * np.float32(255)).astype(np.uint8)


def _pil_299(images_uint8):
    return np.stack([np.asarray(Image.fromarray(im).resize((299, 299), Image.BILINEAR)) for im in images_uint8])


def test_generated_images_are_quantized_by_the_rounding_rule_at_the_clamp_edges(torchvision_extractor):
    """At 299 px PIL's resize is the identity, so the host step shows the quantization alone."""
    rng = np.random.default_rng(11)
    levels = np.arange(256, dtype=np.float32) / 127.5 - 1  # exactly the 256 levels
    halves = (np.arange(255, dtype=np.float32) + 0.5) / 127.5 - 1  # between levels: the rounding decides
    edges = np.array([-3.0, -1.0001, -1.0, np.nextafter(np.float32(-1), 0), np.nextafter(np.float32(1), 0),
                      1.0, 1.0001, 3.0], np.float32)
    values = np.concatenate([levels, halves, edges, rng.uniform(-1.2, 1.2, 299 * 299 * 3 - 519)]).astype(np.float32)
    images = rng.permutation(values).reshape(1, 299, 299, 3)
    quantized = torchvision_extractor.host_preprocess(images)
    assert quantized.dtype == np.uint8
    np.testing.assert_array_equal(quantized, _rounding_rule(images))
    np.testing.assert_array_equal(quantized, to_uint8(images))
    at_edges = quantized.reshape(-1)[np.isin(images.reshape(-1), edges)]
    assert set(at_edges.tolist()) == {0, 255}
    assert quantized.min() == 0 and quantized.max() == 255


@pytest.mark.parametrize("shape", [(32, 32), (256, 256), (40, 57), (512, 512)])
def test_pil_path_resizes_exactly_like_pil_bilinear_from_uint8(torchvision_extractor, shape):
    rng = np.random.default_rng(shape[0])
    images = rng.integers(0, 256, (2, *shape, 3), dtype=np.uint8)
    np.testing.assert_array_equal(torchvision_extractor.host_preprocess(images), _pil_299(images))
    floats = rng.uniform(-1.1, 1.1, (2, *shape, 3)).astype(np.float32)
    np.testing.assert_array_equal(torchvision_extractor.host_preprocess(floats), _pil_299(_rounding_rule(floats)))
    x = torchvision_extractor.preprocess(images).numpy()
    expected = (_pil_299(images) / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(x, expected, atol=1e-5)


def test_files_are_read_like_the_authors_loader(tmp_path):
    """imaging.load_uint8 (the reader of real images and of `fid --paths`): PIL bilinear from the decoded file."""
    image = np.random.default_rng(12).integers(0, 256, (37, 50, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "a.png")
    expected = np.asarray(Image.open(tmp_path / "a.png").convert("RGB").resize((32, 32), Image.BILINEAR))
    np.testing.assert_array_equal(load_uint8(tmp_path / "a.png", 32), expected)
    np.testing.assert_array_equal(resize_uint8(image[None], 32)[0], expected)
    np.testing.assert_array_equal(load_uint8(tmp_path / "a.png"), image)


def test_keras_network_keeps_its_float_path_unless_pil_is_asked(keras_extractor):
    assert keras_extractor.resize == "tf"
    images = np.random.default_rng(13).uniform(-1, 1, (1, 20, 20, 3)).astype(np.float32)
    np.testing.assert_array_equal(keras_extractor.host_preprocess(images), images)
    pil = FidFeatureExtractor("keras", weights=None, resize="pil")
    expected = _pil_299(_rounding_rule(images)) / 127.5 - 1
    np.testing.assert_allclose(pil.preprocess(images).numpy(), expected, atol=1e-6)


def test_statistics_of_batches(keras_extractor):
    rng = np.random.default_rng(7)
    batches = [rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32) for _ in range(2)]
    mu, sigma = keras_extractor.statistics(batches, total=4, progress=False)
    expected_mu, expected_sigma = feature_statistics(keras_extractor(np.concatenate(batches)))
    np.testing.assert_allclose(mu, expected_mu, rtol=1e-6)
    np.testing.assert_allclose(sigma, expected_sigma, rtol=1e-5, atol=1e-9)


def test_offline_errors_name_the_file_and_flag(monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: no network")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    real_find_spec = fid.importlib.util.find_spec  # torch "installed", so that the download is what fails
    monkeypatch.setattr(fid.importlib.util, "find_spec", lambda name, *a: object() if name == "torch"
                        else real_find_spec(name, *a))
    with pytest.raises(InceptionWeightsError, match=f"{fid.KERAS_INCEPTION_FILE}.*--inception-weights"):
        FidFeatureExtractor("keras")
    with pytest.raises(InceptionWeightsError, match="torchvision.*no network.*--inception-weights.*--inception keras"):
        FidFeatureExtractor("torchvision")
    with pytest.raises(FileNotFoundError, match="--inception-weights"):
        FidFeatureExtractor("keras", weights=tmp_path / "absent.h5")
    with pytest.raises(FileNotFoundError, match="absent.pth.*--inception keras"):
        FidFeatureExtractor("torchvision", weights=tmp_path / "absent.pth")
    with pytest.raises(ValueError, match="--inception tensorflow"):
        FidFeatureExtractor("tensorflow")
    with pytest.raises(ValueError, match="--fid-resize cv2"):
        FidFeatureExtractor("keras", weights=None, resize="cv2")


def test_torchvision_weights_without_torch_name_the_three_fixes(monkeypatch, tmp_path):
    real_find_spec = fid.importlib.util.find_spec
    monkeypatch.setattr(fid.importlib.util, "find_spec", lambda name, *a: None if name == "torch"
                        else real_find_spec(name, *a))
    pth = tmp_path / "inception.pth"
    pth.write_bytes(b"not read")
    for weights in ("imagenet", pth):
        with pytest.raises(InceptionWeightsError) as caught:
            FidFeatureExtractor("torchvision", weights=weights)
        message = str(caught.value)
        assert "\n" not in message
        assert all(fix in message for fix in ("pip install torch==2.13.0", "--inception-weights", "--inception keras"))


# torchvision InceptionV3 port against a hand-written torch Inception3 (torch is optional:
# without it these tests skip).

@pytest.fixture(scope="module")
def torch_inception(tmp_path_factory):
    path = tmp_path_factory.mktemp("inception") / "inception_v3_random.pth"
    return save_random_torch_inception(path), path


@pytest.mark.slow
@needs_torch
def test_torchvision_port_matches_torch(torch_inception, tmp_path):
    import torch

    reference, path = torch_inception
    images = np.random.default_rng(8).uniform(-1, 1, (2, 299, 299, 3)).astype(np.float32)
    extractor = FidFeatureExtractor("torchvision", weights=path)
    normalized = extractor.preprocess(images).numpy()
    with torch.no_grad():
        expected = reference(torch.from_numpy(normalized.transpose(0, 3, 1, 2).copy())).numpy()
    actual = extractor(images)
    assert actual.shape == (2, 2048)
    np.testing.assert_allclose(actual, expected, atol=1e-4 * np.abs(expected).max(), rtol=0)

    converted = tmp_path / "inception_torchvision.weights.h5"
    assert convert_weights.main(["--torchvision-inception", str(path), "--output", str(converted)]) == 0
    reloaded = inception.torchvision_inception_v3(converted)
    np.testing.assert_allclose(reloaded(normalized[:1]).numpy(), expected[:1],
                               atol=1e-4 * np.abs(expected).max(), rtol=0)


def test_torchvision_state_dict_mismatch_names_the_key(torchvision_extractor):
    """On the module's torchvision network (built once); the first conv, which the load sets before it fails, is
    put back."""
    model = torchvision_extractor.model
    first_conv = model.get_layer("Conv2d_1a_3x3.conv")
    weights = first_conv.get_weights()
    state_dict = {"Conv2d_1a_3x3.conv.weight": np.zeros((32, 3, 3, 3), np.float32)}
    try:
        with pytest.raises(StateDictError, match="Conv2d_1a_3x3.bn.weight"):
            inception.load_torchvision_state_dict(model, state_dict, "file.pth")
    finally:
        first_conv.set_weights(weights)
