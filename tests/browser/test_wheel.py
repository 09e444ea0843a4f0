"""The demo from an installed wheel: built from a copy of the sources, installed into a fresh virtual
environment, started from an empty directory with no node_modules anywhere; the page translates in
headless Chromium as LiteRT does in Python.

The environment sees the system's site-packages (TensorFlow is not installed twice) but not this
checkout: PYTHONPATH is cleared and the package is the wheel's.
"""

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from benchmarks.browser import Browser
from stargan_keras.browser.litert_files import MANIFEST
from tests.harness.demo import shared_tiny_tflite, start_demo, stop
from tests.harness.page import FIGURES, MIN_PSNR_DB, WILD, canvas_rgb, open_page, picture, psnr, rgba_to_rgb, settle

pytestmark = [pytest.mark.slow, pytest.mark.needs("browser")]

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("setup.py", "README.md", "package.json", "package-lock.json", "stargan_keras", "configs")


def _run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200, **kwargs)
    assert result.returncode == 0, f"{command}: {result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python of a fresh venv holding the wheel, its environment variables, the build's output)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "litert"))
        else:
            shutil.copy(REPO / name, source / name)
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PIP_REQUIRE_VIRTUALENV")}
    build = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(work / "dist"),
                  str(source)], env={**env, "STARGAN_KERAS_REQUIRE_LITERT": "1"})
    (wheel,) = (work / "dist").glob("stargan_keras-*.whl")
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(work / "venv")])
    python = str(work / "venv" / "bin" / "python")
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], env=env)
    return python, env, build.stdout + build.stderr, wheel


def test_the_wheel_carries_only_the_page_litert_files(installed):
    import zipfile

    *_, wheel = installed
    names = zipfile.ZipFile(wheel).namelist()
    litert = sorted(name for name in names if "/litert/" in name)
    manifest = json.loads(zipfile.ZipFile(wheel).read(f"stargan_keras/browser/page/litert/{MANIFEST}"))
    assert litert == sorted([f"stargan_keras/browser/page/litert/{MANIFEST}"] +
                            [f"stargan_keras/browser/page/litert/{path}" for path in manifest["files"]])
    assert not any(name.endswith((".map", ".d.ts")) or "jspi" in name for name in litert)
    lock = json.loads((REPO / "package-lock.json").read_text())["packages"]
    for name, package in manifest["packages"].items():
        assert package["integrity"] == lock[f"node_modules/{name}"]["integrity"]


def test_installed_demo_translates_from_an_empty_directory(installed, tmp_path, tmp_path_factory, tiny_config):
    from stargan_keras.serving.tflite import make_interpreter

    python, env, *_ = installed
    where = _run([python, "-c", "import stargan_keras; print(stargan_keras.__file__)"], env=env, cwd=tmp_path).stdout
    assert "/venv/" in where, where  # the wheel's package, not this checkout's
    tflite = shared_tiny_tflite(tmp_path_factory, tiny_config())
    empty = tmp_path / "empty"
    empty.mkdir()
    process, url = start_demo("--model", str(tflite), python=python, cwd=empty, env=env)
    try:
        with pytest.raises(urllib.error.HTTPError):  # not shipped, so not served: the page runs the wheel's copy
            urllib.request.urlopen(url + "litert/core/wasm/litert_wasm_jspi_internal.wasm", timeout=30)
        with Browser() as browser:
            open_page(browser, url)
            browser.setFiles(selector="#source-file", files=[picture(tmp_path / "source.png", 60, 60, 0)])
            browser.select(selector="#domain", value=str(WILD))
            browser.fill(selector="#seed", value="42")
            settle(browser, "document.querySelector('#outputs figure')?.dataset.seed === '42' && "
                            f"document.querySelector('#outputs figure').dataset.domain === '{WILD}'")
            source = canvas_rgb(browser, "#source")
            figure = browser.evaluate(expression=FIGURES)[0]
        z = np.array(json.loads(figure["z"]), np.float32)
        expected = make_interpreter(tflite).get_signature_runner("latent_guided")(
            image=source[None], target_domain=np.array([WILD], np.int32), z=z[None],
            psi=np.float32(figure["psi"]))["image"][0]
        value = psnr(rgba_to_rgb(figure["pixels"]), expected)
        assert value >= MIN_PSNR_DB, f"{value:.1f} dB"
    finally:
        stop(process)
    assert not any(Path(empty).iterdir())
