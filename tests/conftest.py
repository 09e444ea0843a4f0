"""Shared test setup: quiet TensorFlow, a float32 policy per test, the tiny model config, the ../shared data."""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Keras imports IPython, when installed, only to display HTML in notebooks; no test runs in one, and the import
# is slow: every worker would pay for it.
sys.modules.setdefault("IPython", None)

import pytest  # noqa: E402

from tests.harness.components import COMPONENTS, require  # noqa: E402
from tests.harness.face import face_model_files  # noqa: E402,F401  (a session fixture)
from tests.harness.runs import tiny_v2_run  # noqa: E402,F401  (a session fixture)
from tests.harness.v2 import make_tiny_config  # noqa: E402

SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"


def pytest_configure(config):
    """The `needs` marker, and every skip's reason in the summary (a local run says what it did not test)."""
    config.addinivalue_line("markers", f"needs(component): skip locally, fail in CI, without it ({', '.join(COMPONENTS)})")
    if "s" not in config.option.reportchars and "a" not in config.option.reportchars.lower():
        config.option.reportchars += "s"


def pytest_collection_modifyitems(items):
    """Files holding a slow test first, each file's tests in their order: the workers take whole files in this
    order (`--dist loadfile --no-loadscope-reorder`), so that the long files of one or two tests (a training
    run, the crash kills) do not come last and leave a core idle while they finish."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


def pytest_runtest_setup(item):
    for marker in item.iter_markers("needs"):
        require(*marker.args)


@pytest.fixture(scope="session")
def tiny_config():
    """`tiny_config(**overrides)` -> a Config of tiny networks (see make_tiny_config)."""
    return make_tiny_config


@pytest.fixture(scope="session")
def v2_export(tmp_path_factory, tiny_config):
    """(Translator, export path): one tiny v2 model and its export for every file that only reads an export
    (tests/harness/serving.py, imported here lazily: it loads TensorFlow and gRPC)."""
    from tests.harness.serving import shared_v2_export
    return shared_v2_export(tmp_path_factory, tiny_config)


@pytest.fixture(scope="session")
def v2_served(v2_export):
    """(Translator, export path, the export loaded by the session-based loader, as TF Serving runs it)."""
    from tests.harness.serving import served
    translator, path = v2_export
    session = served(path)
    yield translator, path, session
    session.close()


@pytest.fixture(scope="session")
def warm_python():
    """Commands forked from an interpreter that imported TensorFlow and the package once, for tests that start
    many (tests/harness/zygote.py, imported here lazily)."""
    from tests.harness.zygote import Zygote
    server = Zygote()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _float32_policy():
    """Tests that switch to a mixed policy must not leak it into the next test. (Keras is imported here, not at
    the top: xdist's controller process loads this file too and runs no test, so it need not import TensorFlow.)"""
    import keras

    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def shared_dir() -> Path:
    """../shared beside the repository (real AFHQ/CelebA-HQ images, LPIPS weights); skip when absent."""
    if not SHARED_DIR.is_dir():
        pytest.skip("../shared is not present beside the repository")
    return SHARED_DIR
