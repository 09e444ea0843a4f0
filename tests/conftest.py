"""Shared test setup: quiet TensorFlow, a float32 policy per test, the tiny model config, the ../shared data."""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402

from tests.harness.components import COMPONENTS, require  # noqa: E402
from tests.harness.serving import v2_export, v2_served  # noqa: E402,F401 (shared fixtures)
from tests.harness.v2 import make_tiny_config  # noqa: E402

SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"


def pytest_configure(config):
    """The `needs` marker, and every skip's reason in the summary (a local run says what it did not test)."""
    config.addinivalue_line("markers", f"needs(component): skip locally, fail in CI, without it ({', '.join(COMPONENTS)})")
    if "s" not in config.option.reportchars and "a" not in config.option.reportchars.lower():
        config.option.reportchars += "s"


def pytest_runtest_setup(item):
    for marker in item.iter_markers("needs"):
        require(*marker.args)


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
