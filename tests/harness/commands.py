"""What the tests that run `python -m stargan_keras.X` in subprocesses share."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 600  # seconds a command may take in a test


def command_env() -> dict:
    """The environment of a command under test: this checkout first on the path, TensorFlow's C++ logs quiet."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            "TF_CPP_MIN_LOG_LEVEL": "2"}
