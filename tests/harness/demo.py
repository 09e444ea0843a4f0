"""Starting `python -m stargan_keras.demo` for the demo's tests."""

import os
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from tests.harness.networks import free_ports


def tiny_tflite(work, config, seed: int = 3):
    """A float32 .tflite of random tiny networks in `work`, its domain names file beside it (as a user puts it)."""
    import keras

    from stargan_keras.v2.inference import Translator
    from stargan_keras.v2.networks import build_networks
    from stargan_keras.serving.export import export_saved_model
    from stargan_keras.v2.serving import NAMES_ASSET as DOMAIN_NAMES_ASSET
    from stargan_keras.serving.tflite import convert

    keras.utils.set_random_seed(seed)
    export = export_saved_model(Translator(config, build_networks(config.model, with_discriminator=False)),
                                work / "export", mean_style_samples=200)
    tflite = convert(export, work / "tiny.tflite", "none")
    shutil.copy(export / "assets" / DOMAIN_NAMES_ASSET, work / DOMAIN_NAMES_ASSET)
    return tflite


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
