"""README's pictures of the demo page: a small StarGAN v2 and a small StarGAN v1, trained on the embedded shapes,
each translating a held-out scene in headless Chromium.

    python benchmarks/screenshots.py                    # trains both into runs/screenshots/, writes docs/*.png
    python benchmarks/screenshots.py --runs runs/mine   # a run directory already trained is only resumed

It lives beside the browser benchmark because it is the same machinery: `browser.py` (playwright-core driving
Debian's Chromium), the demo's server started in-process on the run directory (converted to TFLite as
`python -m stargan_keras.demo --model RUN` does), the page driven as a visitor would. Training is the train
command itself (`TRAIN` below, its progress line on this terminal); re-running resumes a run, so a finished run
costs nothing. `tests/browser/test_page.py` takes a picture with `capture` on a tiny model, so this script's
page path is exercised by the suite. Needs `npm ci` and Debian's chromium.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the repository, when not installed

from benchmarks.browser import Browser, missing  # noqa: E402

PAGE_WIDTH, PAGE_HEIGHT = 1000, 560
COLOURS = 64  # the PNG's palette: the page's flat colours and a 32 px model's pixels fit in it


@dataclass(frozen=True)
class Shot:
    """One picture: the run to train (the train command's flags), the source scene, what the visitor sets."""

    run: str
    train: tuple[str, ...]
    output: str
    source: object  # (path) -> writes a source picture there
    actions: tuple  # browser driver calls (method, params) before the source is chosen


def v2_source(path: Path) -> None:
    """A circle of the shapes' validation split (scenes the training never saw), at the model's 32 px."""
    from PIL import Image

    from stargan_keras.data.shapes import generate_shapes

    Image.fromarray(generate_shapes(1, img_size=32, seed=11, split="val").images[0]).save(path)


def v1_source(path: Path) -> None:
    """A small blue circle of v1's shapes test split."""
    from PIL import Image

    from stargan_keras.v1.data import SHAPES_ATTRS, shapes_dataset

    test = shapes_dataset(32, 1, 8, seed=11).splits["test"]
    wanted = {"circle": 1, "red": 0, "large": 0}
    index = next(i for i, labels in enumerate(test.labels)
                 if all(labels[SHAPES_ATTRS.index(name)] == value for name, value in wanted.items()))
    Image.fromarray(test.source.array[index]).save(path)


def label(name: str) -> tuple:
    """Check the v1 page's input of the label `name` (a radio button of an exclusive group, or a checkbox)."""
    return ("check", {"selector": f"#labels label:has-text('{name}') input"})


SHOTS = (
    # StarGAN v2: the default run's preset (configs/shapes.yaml) cut to 2,500 of its 4,000 steps, lambda_ds
    # decaying over 3,000 (the same 1.2x ratio): a working translation in half the time on a loaded CPU.
    Shot("shapes", ("--total-iters", "2500", "--ds-iter", "3000"), "demo.png", v2_source,
         (("select", {"selector": "#domain", "value": "1"}), ("fill", {"selector": "#seed", "value": "1"}))),
    # StarGAN v1: `python -m stargan_keras.train --model v1` as it is (v1_shapes, 4,000 steps).
    Shot("v1_shapes", ("--model", "v1"), "demo_v1.png", v1_source, (label("triangle"), label("red"))),
)


def train(shot: Shot, runs: Path) -> float:
    """Run (or resume) the train command on the shot's run directory; the seconds it took."""
    command = [sys.executable, "-m", "stargan_keras.train", *shot.train, "--run-dir", str(runs / shot.run)]
    print(" ".join(["python", *command[1:]]), flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def act(browser, actions) -> None:
    """Make the browser driver calls `actions`: (method, params) pairs."""
    for method, params in actions:
        browser.call(method, **params)


def capture(browser, address: str, source: str, output: Path, actions=(), timeout_ms: int = 300_000) -> Path:
    """Open the page at `address`, make the driver calls `actions`, choose `source`, wait for its translations and
    save the page as a PNG of `COLOURS` colours at `output`. Raises when the page shows an error."""
    from PIL import Image

    browser.newPage(width=PAGE_WIDTH, height=PAGE_HEIGHT)
    browser.goto(url=address)
    browser.waitFor(expression="document.body.dataset.state !== 'loading'", timeout=timeout_ms)
    before = int(browser.evaluate(expression="Number(document.body.dataset.runs || 0)"))
    act(browser, actions)
    browser.setFiles(selector="#source-file", files=[str(source)])
    browser.waitFor(expression=f"document.body.dataset.state !== 'busy' && "
                               f"Number(document.body.dataset.runs || 0) > {before}", timeout=timeout_ms)
    errors = browser.evaluate(expression="document.getElementById('errors').textContent.trim()")
    if errors:
        raise RuntimeError(f"the page shows an error: {errors}")
    with tempfile.TemporaryDirectory(prefix="screenshot-") as tmp:
        raw = Path(tmp) / "page.png"
        browser.screenshot(path=str(raw))
        output.parent.mkdir(parents=True, exist_ok=True)
        Image.open(raw).convert("RGB").quantize(COLOURS).save(output, optimize=True)
    return output


def photograph(shot: Shot, runs: Path, out: Path) -> Path:
    """Serve the shot's run directory with the demo's server and capture the page translating its source."""
    from stargan_keras.browser.server import make_server, prepare_model, url

    with tempfile.TemporaryDirectory(prefix="screenshot-demo-") as tmp:
        work = Path(tmp)
        model = prepare_model(runs / shot.run, work)
        server = make_server(model, work, port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            shot.source(work / "source.png")
            with Browser() as browser:
                return capture(browser, url(server), str(work / "source.png"), out / shot.output, shot.actions)
        finally:
            server.shutdown()
            server.server_close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "screenshots",
                        help="where the run directories go (an existing run is resumed)")
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="where the PNG files go")
    args = parser.parse_args()
    why = missing()
    if why:
        print(f"error: {why}", file=sys.stderr)
        return 2
    for shot in SHOTS:
        seconds = train(shot, args.runs)
        print(f"{shot.run}: train command {seconds / 60:.1f} min", flush=True)
        print(f"wrote {photograph(shot, args.runs, args.out)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
