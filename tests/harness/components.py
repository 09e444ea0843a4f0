"""What some tests need beyond the package, which CI installs (`.ci/run`): PyTorch, the ONNX packages (the
`test` extra), ffmpeg, Chromium with node and the npm packages, LiteRT.js (npm).

`require(component)` returns normally when the component is here. When it is not, a local run skips the test
with the reason (pytest prints skip reasons: see tests/conftest.py); in CI (the `CI` environment variable set,
as `.ci/run` does) the test fails, so that CI never passes by skipping what it was meant to run. Tests mark
themselves with `@pytest.mark.needs(component)` (checked before the test runs) or call `require` where they
need the module it returns (`torch = require("torch")`).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil

import pytest


def _modules(*names):
    def missing():
        absent = [name for name in names if importlib.util.find_spec(name) is None]
        return f"{', '.join(absent)} not installed" if absent else None

    return missing


def _programs(*names):
    def missing():
        absent = [name for name in names if shutil.which(name) is None]
        return f"{', '.join(absent)} not on PATH (Debian's ffmpeg package)" if absent else None

    return missing


def _browser():
    from benchmarks.browser import missing

    return missing()


def _litert():
    from stargan_keras.browser.server import DemoError, find_litert

    try:
        find_litert()
    except DemoError as err:
        return str(err)
    return None


# component -> () -> why it cannot be used here, or None
COMPONENTS = {
    "torch": _modules("torch"),
    "onnx": _modules("tf2onnx", "onnx", "onnxruntime"),
    "ffmpeg": _programs("ffmpeg", "ffprobe"),
    "browser": _browser,
    "litert": _litert,
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require(component: str):
    """Skip (locally) or fail (in CI) unless `component` is usable; returns the torch module for "torch"."""
    reason = COMPONENTS[component]()
    if reason is not None:
        message = f"needs {component}: {reason}"
        if in_ci():
            pytest.fail(f"{message}; .ci/run installs it, so CI must not skip this test", pytrace=False)
        pytest.skip(message, allow_module_level=True)
    return importlib.import_module("torch") if component == "torch" else None
