"""FID: the Fréchet distance against closed forms, the feature extractor's input pipeline,
and the torchvision InceptionV3 port against a hand-written PyTorch Inception3."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
from PIL import Image

from stargan_keras.metrics import convert_weights, fid, inception
from stargan_keras.metrics.convert_weights import StateDictError
from stargan_keras.metrics.fid import (FidFeatureExtractor, InceptionWeightsError,
                                       feature_statistics, frechet_distance)


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


# Feature extractors (random weights: nothing can be downloaded here).

@pytest.fixture(scope="module")
def keras_extractor():
    return FidFeatureExtractor("keras", weights=None, batch_size=2)


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


def test_torchvision_preprocessing_is_imagenet_normalisation():
    extractor = FidFeatureExtractor("torchvision", weights=None)
    values = np.array([-1.0, 0.2, 1.0], np.float32)
    x = extractor.preprocess(np.broadcast_to(values, (2, 40, 40, 3))).numpy()
    expected = ((values + 1) / 2 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    assert x.shape == (2, 299, 299, 3)
    np.testing.assert_allclose(x, np.broadcast_to(expected, x.shape), atol=1e-5)
    assert extractor(np.zeros((2, 40, 40, 3), np.float32)).shape == (2, 2048)


def test_statistics_of_batches(keras_extractor):
    rng = np.random.default_rng(7)
    batches = [rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32) for _ in range(2)]
    mu, sigma = keras_extractor.statistics(batches, steps=2, progress=False)
    expected_mu, expected_sigma = feature_statistics(keras_extractor(np.concatenate(batches)))
    np.testing.assert_allclose(mu, expected_mu, rtol=1e-6)
    np.testing.assert_allclose(sigma, expected_sigma, rtol=1e-5, atol=1e-9)


def test_offline_errors_name_the_file_and_flag(monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: no network")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(InceptionWeightsError, match=f"{fid.KERAS_INCEPTION_FILE}.*--inception-weights"):
        FidFeatureExtractor("keras")
    with pytest.raises(InceptionWeightsError, match="inception_v3_google.*--inception torchvision"):
        FidFeatureExtractor("torchvision")
    with pytest.raises(FileNotFoundError, match="--inception-weights"):
        FidFeatureExtractor("keras", weights=tmp_path / "absent.h5")
    with pytest.raises(FileNotFoundError, match="--inception torchvision"):
        FidFeatureExtractor("torchvision", weights=tmp_path / "absent.pth")
    with pytest.raises(ValueError, match="--inception tensorflow"):
        FidFeatureExtractor("tensorflow")


# torchvision InceptionV3 port against a hand-written torch Inception3 (torch is optional:
# without it the reference classes are never instantiated and their tests skip).

try:
    import torch
    nn, F = torch.nn, torch.nn.functional
    _Module = nn.Module
except ImportError:
    torch = nn = F = None
    _Module = object
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (the [torch] extra) is not installed")


class Basic(_Module):
    def __init__(self, cin, cout, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _pool3(x):
    return F.avg_pool2d(x, 3, stride=1, padding=1)


class BlockA(_Module):
    def __init__(self, cin, pool_features):
        super().__init__()
        self.branch1x1 = Basic(cin, 64, kernel_size=1)
        self.branch5x5_1 = Basic(cin, 48, kernel_size=1)
        self.branch5x5_2 = Basic(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = Basic(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = Basic(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = Basic(96, 96, kernel_size=3, padding=1)
        self.branch_pool = Basic(cin, pool_features, kernel_size=1)

    def forward(self, x):
        return torch.cat([self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          self.branch_pool(_pool3(x))], 1)


class BlockB(_Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3 = Basic(cin, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = Basic(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = Basic(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = Basic(96, 96, kernel_size=3, stride=2)

    def forward(self, x):
        return torch.cat([self.branch3x3(x),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          F.max_pool2d(x, 3, stride=2)], 1)


class BlockC(_Module):
    def __init__(self, cin, c7):
        super().__init__()
        self.branch1x1 = Basic(cin, 192, kernel_size=1)
        self.branch7x7_1 = Basic(cin, c7, kernel_size=1)
        self.branch7x7_2 = Basic(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = Basic(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = Basic(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = Basic(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = Basic(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = Basic(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = Basic(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = Basic(cin, 192, kernel_size=1)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = layer(bd)
        return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(_pool3(x))], 1)


class BlockD(_Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3_1 = Basic(cin, 192, kernel_size=1)
        self.branch3x3_2 = Basic(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = Basic(cin, 192, kernel_size=1)
        self.branch7x7x3_2 = Basic(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = Basic(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = Basic(192, 192, kernel_size=3, stride=2)

    def forward(self, x):
        b7 = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = layer(b7)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7, F.max_pool2d(x, 3, stride=2)], 1)


class BlockE(_Module):
    def __init__(self, cin):
        super().__init__()
        self.branch1x1 = Basic(cin, 320, kernel_size=1)
        self.branch3x3_1 = Basic(cin, 384, kernel_size=1)
        self.branch3x3_2a = Basic(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = Basic(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = Basic(cin, 448, kernel_size=1)
        self.branch3x3dbl_2 = Basic(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = Basic(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = Basic(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = Basic(cin, 192, kernel_size=1)

    def forward(self, x):
        b3 = self.branch3x3_1(x)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(b3), self.branch3x3_2b(b3),
                          self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd),
                          self.branch_pool(_pool3(x))], 1)


class TorchInception3(_Module):
    """torchvision's Inception3 trunk as the authors' FID calls it (no transform_input)."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = Basic(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = Basic(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = Basic(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = Basic(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = Basic(80, 192, kernel_size=3)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = BlockA(192, 32), BlockA(256, 64), BlockA(288, 64)
        self.Mixed_6a = BlockB(288)
        self.Mixed_6b, self.Mixed_6c = BlockC(768, 128), BlockC(768, 160)
        self.Mixed_6d, self.Mixed_6e = BlockC(768, 160), BlockC(768, 192)
        self.Mixed_7a, self.Mixed_7b, self.Mixed_7c = BlockD(768), BlockE(1280), BlockE(2048)
        self.fc = nn.Linear(2048, 10)  # unused by the features, present in torchvision's files

    def forward(self, x):
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, 3, stride=2)))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return x.mean(dim=(2, 3))


@pytest.fixture(scope="module")
def torch_inception(tmp_path_factory):
    """A randomly initialised reference, with BatchNorm statistics that are not identities,
    saved as a torchvision-style state dict file."""
    torch.manual_seed(0)
    model = TorchInception3().eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0, (2 / fan_in) ** 0.5)
            elif isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.2)
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("inception") / "inception_v3_random.pth"
    torch.save(model.state_dict(), path)
    return model, path


@needs_torch
def test_torchvision_port_matches_torch(torch_inception, tmp_path):
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


def test_torchvision_state_dict_mismatch_names_the_key():
    model = inception.build_torchvision_inception_v3()
    state_dict = {"Conv2d_1a_3x3.conv.weight": np.zeros((32, 3, 3, 3), np.float32)}
    with pytest.raises(StateDictError, match="Conv2d_1a_3x3.bn.weight"):
        inception.load_torchvision_state_dict(model, state_dict, "file.pth")
