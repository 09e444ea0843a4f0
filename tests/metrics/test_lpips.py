"""LPIPS against a hand-written PyTorch reference (AlexNet trunk + the upstream LPIPS head,
`tests/references/torch_metrics.py`)."""

import keras
import numpy as np
import pytest

from tests.harness.components import require

torch = require("torch")

from stargan_keras.metrics import convert_weights  # noqa: E402
from stargan_keras.metrics.lpips import LPIPS, mean_pairwise_lpips  # noqa: E402
from stargan_keras.core.torch_io import StateDictError  # noqa: E402
from tests.conftest import SHARED_DIR  # noqa: E402
from tests.references.torch_metrics import LPIPS_CHANNELS, TorchLPIPS  # noqa: E402

LINEAR_FILE = SHARED_DIR / "data" / "lpips_weights.ckpt"


def _linear_state_dict(generator):
    """The real LPIPS linear weights when ../shared is present, random non-negative ones otherwise."""
    if LINEAR_FILE.is_file():
        return torch.load(LINEAR_FILE, map_location="cpu", weights_only=True)
    return {f"lpips_weights.{i}.main.1.weight": torch.rand(1, c, 1, 1, generator=generator) / c
            for i, c in enumerate(LPIPS_CHANNELS)}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The torch reference, its weight files, and the Keras LPIPS converted through the command."""
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    reference = TorchLPIPS(_linear_state_dict(generator)).eval()
    directory = tmp_path_factory.mktemp("lpips")
    alexnet_file, linear_file = directory / "alexnet.pth", directory / "lpips_linear.ckpt"
    torch.save(reference.alexnet.state_dict(), alexnet_file)
    torch.save({f"lpips_weights.{i}.main.1.weight": conv.weight.detach()
                for i, conv in enumerate(reference.linear)}, linear_file)
    output = directory / "lpips.weights.h5"
    assert convert_weights.main(["--lpips-linear", str(linear_file), "--alexnet", str(alexnet_file),
                                 "--output", str(output)]) == 0
    return reference, LPIPS.from_weights(output), alexnet_file, linear_file


def _images(seed, shape=(4, 64, 64, 3)):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def _nchw(x):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def test_matches_torch_reference(converted):
    reference, lpips, *_ = converted
    x, y = _images(1), _images(2)
    with torch.no_grad():
        expected = reference(_nchw(x), _nchw(y)).numpy()
    actual = keras.ops.convert_to_numpy(lpips(x, y))
    assert actual.shape == (4,)
    assert expected.min() > 0
    np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=0)


def test_real_linear_weights_are_used_when_shared_exists(converted):
    if not LINEAR_FILE.is_file():
        pytest.skip("../shared is absent: the parity test ran with random linear weights")
    _, lpips, *_ = converted
    real = torch.load(LINEAR_FILE, map_location="cpu", weights_only=True)
    kernel = keras.ops.convert_to_numpy(lpips.linear[2].kernel)
    np.testing.assert_array_equal(kernel[0, 0, :, 0], real["lpips_weights.2.main.1.weight"].numpy().ravel())


def test_identical_images_have_zero_distance(converted):
    _, lpips, *_ = converted
    x = _images(3)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(lpips(x, x)), np.zeros(4, np.float32))


def test_mean_pairwise_matches_brute_force(converted):
    reference, lpips, *_ = converted
    outputs = _images(4, (3, 2, 64, 64, 3))
    with torch.no_grad():
        pairs = [reference(_nchw(outputs[i]), _nchw(outputs[j])).numpy()
                 for i, j in ((0, 1), (0, 2), (1, 2))]
    np.testing.assert_allclose(mean_pairwise_lpips(lpips, outputs), np.mean(pairs, axis=0),
                               atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="at least 2 outputs"):
        mean_pairwise_lpips(lpips, outputs[:1])


def test_missing_weights_file_names_the_command_and_flag(tmp_path):
    with pytest.raises(FileNotFoundError, match="convert_weights.*--lpips-weights"):
        LPIPS.from_weights(tmp_path / "absent.weights.h5")


def test_wrong_state_dict_names_the_key(converted):
    _, _, alexnet_file, linear_file = converted
    with pytest.raises(StateDictError, match="features.0.weight"):
        LPIPS.from_torch_files(linear_file, linear_file)
    with pytest.raises(StateDictError, match="lpips_weights.0.main.1.weight.*lin0.model.1.weight"):
        LPIPS.from_torch_files(alexnet_file, alexnet_file)
