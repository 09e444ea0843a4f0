"""The in-browser demo's cost in headless Chromium: loading the page's model, then one translation.

    python benchmarks/demo_browser.py --config shapes --quantize none      # the default run's size, float32
    python benchmarks/demo_browser.py --config afhq --quantize dynamic     # 256 px, int8 weights (59 MB)

Builds the networks of a preset with random weights (the cost does not depend on the values),
exports and converts them as `python -m stargan_keras.demo` does, serves them with the demo's
server and opens the page --loads times in fresh browser contexts (no cache): the load time is
the page's own (`data-load-ms`: model.json, LiteRT.js's WebAssembly, the model download and
compilation). In the last page it translates a source image: the first latent-guided translation
(it includes the runtime's first-run set-up), then the median of a row of --runs latent-guided
translations and of --runs reference-guided ones, each as the page times it (inputs in, pixels
out). Needs `npm ci` and Debian's chromium. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, when not installed

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from browser import Browser, missing  # noqa: E402 (benchmarks/, the script's own folder)
from stargan_keras.browser.server import make_server, prepare_model, progress_line, url  # noqa: E402
from stargan_keras.families import load_config  # noqa: E402

SHARED_CAT = Path(__file__).resolve().parents[2] / "shared/data/stargan_v2_representative/afhq/src/cat"
READY = "document.body.dataset.state === 'ready'"
FIGURE_MS = "[...document.querySelectorAll('#outputs figure')].map(f => Number(f.dataset.ms))"


def build_tflite(config_name: str, quantize: str, work: Path) -> Path:
    import keras

    from stargan_keras.v2.inference import Translator
    from stargan_keras.v2.networks import build_networks
    from stargan_keras.serving.export import export_saved_model
    from stargan_keras.v2.serving import NAMES_ASSET as DOMAIN_NAMES_ASSET
    from stargan_keras.serving.tflite import convert

    keras.utils.set_random_seed(0)
    config = load_config(config_name)
    with progress_line(f"building the {config_name} networks ({config.model.img_size} px, random weights)"):
        translator = Translator(config, build_networks(config.model, with_discriminator=False))
    with progress_line("exporting"):
        export = export_saved_model(translator, work / "export", mean_style_samples=1000)
    with progress_line(f"converting (--quantize {quantize})"):
        tflite = convert(export, work / f"{config_name}-{quantize}.tflite", quantize)
    shutil.copy(export / "assets" / DOMAIN_NAMES_ASSET, work / DOMAIN_NAMES_ASSET)
    return tflite


def source_images(work: Path) -> list[str]:
    """Two pictures: AFHQ cats from ../shared when present, else smooth synthetic ones."""
    if SHARED_CAT.is_dir():
        found = sorted(SHARED_CAT.glob("*.jpg"))[:2]
        if len(found) == 2:
            return [str(p) for p in found]
    paths = []
    for k in range(2):
        yy, xx = np.mgrid[0:480, 0:640] / 480
        image = np.stack([127 + 120 * np.sin(2 * np.pi * ((k + 1) * xx + c * yy) + c) for c in range(3)], -1)
        paths.append(work / f"picture{k}.png")
        Image.fromarray(image.astype(np.uint8)).save(paths[-1])
    return [str(p) for p in paths]


def wait_for_render(browser, before: int, timeout: int, kind: str = "latent"):
    """Until a render that started after `before` renders were done has drawn outputs of `kind`."""
    browser.waitFor(expression=f"{READY} && Number(document.body.dataset.runs || 0) > {before} && "
                               f"document.querySelector('#outputs figure')?.dataset.kind === '{kind}'",
                    timeout=timeout)


def runs_done(browser) -> int:
    return int(browser.evaluate(expression="Number(document.body.dataset.runs || 0)"))


def measure(address: str, images: list[str], loads: int, runs: int, timeout_s: float) -> dict:
    timeout = int(timeout_s * 1000)
    load_ms = []
    with Browser(timeout=timeout_s + 60) as browser:
        for k in range(loads):
            browser.newPage()
            browser.goto(url=address)
            browser.waitFor(expression="document.body.dataset.state !== 'loading'", timeout=timeout)
            errors = browser.evaluate(expression="document.getElementById('errors').textContent")
            if errors:
                raise SystemExit(f"the page shows an error: {errors}")
            load_ms.append(float(browser.evaluate(expression="document.body.dataset.loadMs")))
            print(f"load {k + 1}/{loads}: {load_ms[-1] / 1000:.2f} s", flush=True)
        backend = browser.evaluate(expression="document.body.dataset.backend")
        status = browser.evaluate(expression="document.getElementById('status').textContent")
        browser.fill(selector="#count", value="1")
        before = runs_done(browser)
        browser.setFiles(selector="#source-file", files=[images[0]])
        wait_for_render(browser, before, timeout)
        (first_ms,) = browser.evaluate(expression=FIGURE_MS)
        before = runs_done(browser)
        browser.fill(selector="#count", value=str(runs))
        wait_for_render(browser, before, timeout)
        latent_ms = browser.evaluate(expression=FIGURE_MS)
        print(f"latent-guided: first {first_ms:.0f} ms, then median {statistics.median(latent_ms):.0f} ms", flush=True)
        browser.check(selector="input[name=mode][value=reference]")
        reference_ms = []
        for k in range(runs):
            before = runs_done(browser)
            if k == 0:
                browser.setFiles(selector="#reference-file", files=[images[1]])
            else:
                browser.select(selector="#domain", value=str((k + 1) % 2))  # the page starts on domain 1
            wait_for_render(browser, before, timeout, "reference")
            reference_ms += browser.evaluate(expression=FIGURE_MS)
        print(f"reference-guided: median {statistics.median(reference_ms):.0f} ms", flush=True)
    return {"backend": backend, "status": status, "load_s": [round(v / 1000, 2) for v in load_ms],
            "first_latent_s": round(first_ms / 1000, 3),
            "latent_s": round(statistics.median(latent_ms) / 1000, 3),
            "reference_s": round(statistics.median(reference_ms) / 1000, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="shapes", help="preset whose networks to build (shapes, afhq, ...)")
    parser.add_argument("--quantize", default="none", choices=("none", "float16", "dynamic"))
    parser.add_argument("--tflite", default=None, help="time this .tflite file instead of building one")
    parser.add_argument("--loads", type=int, default=3, help="page loads in fresh browser contexts")
    parser.add_argument("--runs", type=int, default=5, help="timed translations of each kind")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for a load or a row of translations")
    args = parser.parse_args()
    why = missing()
    if why:
        print(f"error: {why}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="demo-bench-") as tmp:
        work = Path(tmp)
        tflite = Path(args.tflite) if args.tflite else build_tflite(args.config, args.quantize, work)
        model = prepare_model(tflite, work)
        server = make_server(model, work, port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        print(f"{tflite.name}: {model.metadata['model_bytes'] / 1e6:.1f} MB, {model.metadata['img_size']} px; "
              f"page {url(server)}", flush=True)
        try:
            result = measure(url(server), source_images(work), args.loads, args.runs, args.timeout)
        finally:
            server.shutdown()
            server.server_close()
    result.update(config=args.config, quantize=args.quantize, model_mb=round(model.metadata["model_bytes"] / 1e6, 1),
                  img_size=model.metadata["img_size"], cpus=os.cpu_count())
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
