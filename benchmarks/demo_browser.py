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

    python benchmarks/demo_browser.py --compare --config afhq --threads 1,2   # page against native LiteRT

--compare converts the networks to float32, float16 and int8 (dynamic-range) files and, for each file
and thread count, loads it in the page (`?threads=N`) and in the native `ai_edge_litert` interpreter
(`num_threads=N`) and times latent-guided translations of the same inputs (the page's resized source
and the z of its seed) in alternating rounds, page then native, so a busy spell of the shared machine
hits both; it prints a table of medians: wall time and CPU seconds (the native process; all of
Chromium's processes for the page) per translation, and the page / native ratios.
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
    return build_tflites(config_name, [quantize], work)[quantize]


def build_tflites(config_name: str, kinds: list[str], work: Path) -> dict:
    """{quantize: .tflite path} of one preset's networks with random weights, exported once."""
    import keras

    from stargan_keras.v2.inference import Translator
    from stargan_keras.v2.networks import build_networks
    from stargan_keras.serving.export import export_saved_model
    from stargan_keras.v2.serving import NAMES_ASSET as DOMAIN_NAMES_ASSET
    from stargan_keras.serving.tflite import convert_many

    keras.utils.set_random_seed(0)
    config = load_config(config_name)
    with progress_line(f"building the {config_name} networks ({config.model.img_size} px, random weights)"):
        translator = Translator(config, build_networks(config.model, with_discriminator=False))
    with progress_line("exporting"):
        export = export_saved_model(translator, work / "export", mean_style_samples=1000)
    with progress_line(f"converting (--quantize {', '.join(kinds)})"):
        tflites = convert_many(export, {kind: work / f"{config_name}-{kind}.tflite" for kind in kinds})
    shutil.copy(export / "assets" / DOMAIN_NAMES_ASSET, work / DOMAIN_NAMES_ASSET)
    return tflites


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


def process_cpu_seconds(root_pid: int) -> float:
    """User + system CPU seconds of a process and all its descendants (Linux /proc), those alive now."""
    tick = os.sysconf("SC_CLK_TCK")
    children, cpu = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        children.setdefault(int(fields[1]), []).append(pid)
        cpu[pid] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [root_pid]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo += children.get(pid, [])
    return total


class NativeSide:
    """One TFLite file in the native interpreter with N threads: load time, then timed latent-guided calls."""

    def __init__(self, tflite: Path, threads: int):
        import time

        from stargan_keras.serving.tflite import make_interpreter

        start = time.perf_counter()
        self.interpreter = make_interpreter(tflite, threads)
        self.runner = self.interpreter.get_signature_runner("latent_guided")  # allocates its tensors
        self.load_s = time.perf_counter() - start

    def translate(self, inputs: dict) -> tuple[float, float, np.ndarray]:
        import time

        cpu, start = time.process_time(), time.perf_counter()
        image = self.runner(**inputs)["image"]
        return time.perf_counter() - start, time.process_time() - cpu, image


class PageSide:
    """The demo page with N threads in a fresh browser context; each translate() is one latent-guided render."""

    def __init__(self, browser, address: str, threads: int, source: str, timeout_s: float):
        self.browser, self.timeout = browser, int(timeout_s * 1000)
        browser.newPage()
        browser.goto(url=f"{address}?threads={threads}")
        browser.waitFor(expression="document.body.dataset.state !== 'loading'", timeout=self.timeout)
        errors = browser.evaluate(expression="document.getElementById('errors').textContent")
        if errors:
            raise SystemExit(f"the page shows an error: {errors}")
        self.load_s = float(browser.evaluate(expression="document.body.dataset.loadMs")) / 1000
        self.backend = browser.evaluate(expression="document.body.dataset.backend")
        self.threads = int(browser.evaluate(expression="document.body.dataset.threads"))
        browser.fill(selector="#count", value="1")
        before = runs_done(browser)
        browser.setFiles(selector="#source-file", files=[source])
        wait_for_render(browser, before, self.timeout)
        self.first_s = browser.evaluate(expression=FIGURE_MS)[0] / 1000
        size = int(browser.evaluate(expression="document.getElementById('source').width"))
        rgba = browser.evaluate(expression=f"Array.from(document.getElementById('source').getContext('2d')"
                                           f".getImageData(0, 0, {size}, {size}).data)")
        self.source = np.array(rgba, np.uint8).reshape(size, size, 4)[None, ..., :3]
        self.seed = 1000

    def translate(self) -> tuple[float, float, dict]:
        """(page seconds, CPU seconds of Chromium, the inputs it used: image, target_domain, z, psi)."""
        self.seed += 1
        before = runs_done(self.browser)
        cpu = process_cpu_seconds(self.browser.process.pid)
        # An input event, as typing gives, without Playwright's 30 s wait for a page busy with the last render.
        self.browser.evaluate(expression=f"(seed => {{ seed.value = '{self.seed}'; "
                                         f"seed.dispatchEvent(new Event('input')); }})(document.getElementById('seed'))")
        wait_for_render(self.browser, before, self.timeout)
        cpu = process_cpu_seconds(self.browser.process.pid) - cpu
        (figure,) = self.browser.evaluate(expression="[...document.querySelectorAll('#outputs figure')]"
                                                     ".map(f => ({...f.dataset}))")
        inputs = {"image": self.source, "target_domain": np.array([int(figure["domain"])], np.int32),
                  "z": np.array(json.loads(figure["z"]), np.float32)[None], "psi": np.float32(figure["psi"])}
        return float(figure["ms"]) / 1000, cpu, inputs

    def pixels(self) -> np.ndarray:
        size = self.source.shape[1]
        rgba = self.browser.evaluate(expression=f"Array.from(document.querySelector('#outputs canvas')"
                                                f".getContext('2d').getImageData(0, 0, {size}, {size}).data)")
        return np.array(rgba, np.uint8).reshape(size, size, 4)[..., :3]


KIND_NAMES = {"none": "float32", "float16": "float16", "dynamic": "int8"}


def compare(files: dict, work: Path, threads: list[int], rounds: int, timeout_s: float) -> list[dict]:
    """For each file and thread count: native and page load, then `rounds` alternating translations."""
    from stargan_keras.serving.tflite import psnr

    rows = []
    source = source_images(work)[0]
    with Browser(timeout=timeout_s + 60) as browser:
        for quantize, tflite in files.items():
            model = prepare_model(tflite, work)
            server = make_server(model, work, port=0)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            try:
                for n in threads:
                    native = NativeSide(tflite, n)
                    page = PageSide(browser, url(server), n, source, timeout_s)
                    times = {"native_s": [], "native_cpu_s": [], "page_s": [], "page_cpu_s": []}
                    for k in range(rounds + 1):  # the first native call is its warm-up (the page's is first_s)
                        page_s, page_cpu, inputs = page.translate()
                        native_s, native_cpu, image = native.translate(inputs)
                        if k == 0:
                            native_first_s, match_db = native_s, psnr(page.pixels(), image[0], 255.0)
                            continue
                        for key, value in zip(times, (native_s, native_cpu, page_s, page_cpu)):
                            times[key].append(value)
                    row = {"kind": KIND_NAMES[quantize], "mb": round(model.metadata["model_bytes"] / 1e6, 1),
                           "threads": n, "page_threads": page.threads, "backend": page.backend,
                           "native_load_s": round(native.load_s, 2), "page_load_s": round(page.load_s, 2),
                           "native_first_s": round(native_first_s, 3), "page_first_s": round(page.first_s, 3),
                           **{key: round(statistics.median(v), 3) for key, v in times.items()},
                           "psnr_db": round(match_db, 1)}
                    row["ratio"] = round(row["page_s"] / row["native_s"], 2)
                    row["cpu_ratio"] = round(row["page_cpu_s"] / max(row["native_cpu_s"], 1e-9), 2)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    del native
            finally:
                server.shutdown()
                server.server_close()
    return rows


def print_table(rows: list[dict]) -> None:
    columns = [("kind", "kind"), ("mb", "MB"), ("threads", "threads"), ("native_load_s", "load native s"),
               ("page_load_s", "load page s"), ("native_s", "native s"), ("page_s", "page s"), ("ratio", "ratio"),
               ("native_cpu_s", "native CPU s"), ("page_cpu_s", "page CPU s"), ("cpu_ratio", "CPU ratio"),
               ("psnr_db", "page/native dB")]
    print("| " + " | ".join(title for _, title in columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row[key]) for key, _ in columns) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="shapes", help="preset whose networks to build (shapes, afhq, ...)")
    parser.add_argument("--quantize", default="none", choices=("none", "float16", "dynamic"))
    parser.add_argument("--tflite", default=None, help="time this .tflite file instead of building one")
    parser.add_argument("--loads", type=int, default=3, help="page loads in fresh browser contexts")
    parser.add_argument("--runs", type=int, default=5, help="timed translations of each kind")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for a load or a row of translations")
    parser.add_argument("--compare", action="store_true",
                        help="float32, float16 and int8 files in the page against the native interpreter")
    parser.add_argument("--kinds", default="none,float16,dynamic", help="--compare: the --quantize kinds to time")
    parser.add_argument("--threads", default="1,2", help="--compare: thread counts, both sides")
    parser.add_argument("--rounds", type=int, default=3, help="--compare: timed rounds (native, page) per file")
    parser.add_argument("--files", default=None,
                        help="--compare: a folder of earlier CONFIG-KIND.tflite files to time instead of building")
    args = parser.parse_args()
    why = missing()
    if why:
        print(f"error: {why}", file=sys.stderr)
        return 2
    if args.compare:
        return main_compare(args)
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


def main_compare(args) -> int:
    kinds = [kind for kind in args.kinds.split(",") if kind]
    unknown = [kind for kind in kinds if kind not in KIND_NAMES]
    if unknown:
        print(f"error: --kinds {','.join(unknown)}: choose among {','.join(KIND_NAMES)}", file=sys.stderr)
        return 2
    threads = [int(n) for n in args.threads.split(",") if n]
    with tempfile.TemporaryDirectory(prefix="demo-bench-") as tmp:
        work = Path(tmp)
        files = ({kind: Path(args.files) / f"{args.config}-{kind}.tflite" for kind in kinds} if args.files
                 else build_tflites(args.config, kinds, work))
        rows = compare(files, work, threads, args.rounds, args.timeout)
    print_table(rows)
    print(json.dumps({"config": args.config, "cpus": os.cpu_count(), "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
