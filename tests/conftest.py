"""Shared test setup: quiet TensorFlow, a float32 policy per test, the tiny model config, the ../shared data."""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402

SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"
TINY_DOMAINS = ("cat", "dog", "wild")
TINY_MODEL = dict(img_size=32, num_domains=3, domain_names=list(TINY_DOMAINS), w_hpf=0.0, base_dim=8,
                  max_conv_dim=32, mapping_hidden_dim=32)


def make_tiny_config(**overrides):
    """The afhq preset with networks small enough for tests: 32 px, widths 8-32, three named domains.

    Overrides are config fields (any section), e.g. img_size=16 or num_domains=2.
    """
    from stargan_keras.families import load_config

    fields = {**TINY_MODEL, **overrides}
    if "num_domains" in overrides and "domain_names" not in overrides:
        fields["domain_names"] = []
    return load_config("afhq").replace(**fields)


@pytest.fixture(scope="session")
def tiny_config():
    """`tiny_config(**overrides)` -> a Config of tiny networks (see make_tiny_config)."""
    return make_tiny_config


@pytest.fixture(autouse=True)
def _float32_policy():
    """Tests that switch to a mixed policy must not leak it into the next test."""
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def shared_dir() -> Path:
    """../shared beside the repository (real AFHQ/CelebA-HQ images, LPIPS weights); skip when absent."""
    if not SHARED_DIR.is_dir():
        pytest.skip("../shared is not present beside the repository")
    return SHARED_DIR
