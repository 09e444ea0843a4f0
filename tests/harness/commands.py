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


def user_env(**extra) -> dict:
    """The environment of a user who set none of the variables the console tests are about (TensorFlow's log
    level, the package's debug switch, oneDNN; COLUMNS and LINES would override a pseudo-terminal's size)."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("TF_CPP_MIN_LOG_LEVEL", "STARGAN_KERAS_DEBUG", "TF_ENABLE_ONEDNN_OPTS", "COLUMNS", "LINES")}
    return {**env, "PYTHONPATH": str(REPO), **extra}
