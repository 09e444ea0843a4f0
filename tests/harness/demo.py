"""Starting `python -m stargan_keras.demo` for the demo's tests."""

import contextlib
import os
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from tests.harness.artifacts import built_once
from tests.harness.networks import free_ports


def tiny_tflite(work, config, seed: int = 3, name: str = "tiny"):
    """A float32 `name`.tflite of random tiny networks of the config's family in `work`, the export's names file
    (domains or label columns) beside it, as a user puts it."""
    import importlib

    import keras

    from stargan_keras import families
    from stargan_keras.serving.export import export_saved_model
    from stargan_keras.serving.tflite import convert

    family = families.of_config(config)
    networks = importlib.import_module(f"stargan_keras.{family.name}.networks")
    keras.utils.set_random_seed(seed)
    translator = family.translator(config, networks.build_networks(config.model, with_discriminator=False))
    export = export_saved_model(translator, work / f"{name}-export", mean_style_samples=200)
    tflite = convert(export, work / f"{name}.tflite", "none")
    names_asset = family.signatures.names_asset
    shutil.copy(export / "assets" / names_asset, work / names_asset)
    return tflite


def shared_tiny_tflite(tmp_path_factory, config, name: str = "tiny"):
    """`tiny_tflite(..., config, name=name)` converted once per test session for every test that only reads it
    (`artifacts.built_once`); one `name` stands for one config."""
    return built_once(tmp_path_factory, f"{name}_tflite", lambda work: tiny_tflite(work, config, name=name)) / \
        f"{name}.tflite"


@contextlib.contextmanager
def tiny_demo(tflite):
    """(url, tflite path): the demo command serving `tflite` (from `tiny_tflite`), stopped on exit."""
    process, url = start_demo("--model", str(tflite))
    try:
        yield url, tflite
    finally:
        stop(process)


def start_demo(*args, timeout: float = 600.0, python: str = sys.executable, cwd=None, env=None):
    """The demo command on a free port with `args`; returns (process, url) once it prints its URL.

    `python` runs it (another environment's interpreter), in `cwd`, with `env` (default: this one's).
    The caller stops it (`process.terminate()`); its output lines are in `process.lines` (a list).
    """
    (port,) = free_ports(1)
    process = subprocess.Popen([python, "-m", "stargan_keras.demo", *args, "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd,
                               env={**(os.environ if env is None else env), "TF_CPP_MIN_LOG_LEVEL": "3"})
    process.lines = []
    seen: queue.Queue = queue.Queue()

    def read():
        for line in process.stdout:
            process.lines.append(line.rstrip("\n"))
            seen.put(line)
        seen.put(None)

    threading.Thread(target=read, daemon=True).start()
    while True:
        try:
            line = seen.get(timeout=timeout)
        except queue.Empty:
            process.kill()
            raise AssertionError(f"the demo printed no URL in {timeout:.0f}s: {process.lines}") from None
        if line is None:
            raise AssertionError(f"the demo exited ({process.wait()}) before serving: {process.lines}")
        if line.startswith("open http://"):
            return process, line.split()[1]


def stop(process) -> int:
    process.terminate()
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def fake_litert(root: Path) -> Path:
    """A node_modules/@litertjs with one file per served folder."""
    litert = root / "node_modules" / "@litertjs"
    for folder, name in (("core/dist", "index.js"), ("core/wasm", "litert.wasm"), ("wasm-utils/dist", "index.js")):
        (litert / folder).mkdir(parents=True, exist_ok=True)
        (litert / folder / name).write_text(f"// {folder}/{name}\n")
    for package in ("core", "wasm-utils"):
        (litert / package / "package.json").write_text("{}")
    return litert
