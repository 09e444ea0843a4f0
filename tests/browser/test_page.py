"""The in-browser demo in headless Chromium: the page's translations equal LiteRT's in Python on the same
inputs, and the errors a visitor can cause are shown in the page.

A tiny random model is exported and converted to a float32 .tflite; `python -m stargan_keras.demo`
serves it on 127.0.0.1 and Debian's Chromium runs the page (benchmarks/browser.py, playwright-core).
Skips where Chromium, node or the npm packages (`npm ci`) are absent.
"""

import json
import os

import numpy as np
import pytest
from PIL import Image

from benchmarks.browser import Browser, missing
from tests.harness.demo import start_demo, stop, tiny_tflite
from tests.harness.page import (ERRORS, FIGURES, MIN_PSNR_DB, STATE, WILD, canvas_rgb,
                                open_page, picture, psnr, rgba_to_rgb, settle)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(missing() is not None, reason=f"browser demo test: {missing()}")]

@pytest.fixture(scope="module")
def demo(tmp_path_factory, tiny_config):
    """(url, tflite path, a work directory): the demo command serving a tiny float32 .tflite."""
    work = tmp_path_factory.mktemp("demo")
    tflite = tiny_tflite(work, tiny_config())
    process, url = start_demo("--model", str(tflite))
    yield url, tflite, work
    stop(process)


@pytest.fixture
def browser():
    with Browser() as running:
        yield running


def test_page_translates_as_litert_does_in_python(demo, browser, tmp_path):
    from stargan_keras.browser.server import latent_from_seed
    from stargan_keras.serving.tflite import make_interpreter

    url, tflite, _ = demo
    interpreter = make_interpreter(tflite)
    open_page(browser, url)
    assert browser.evaluate(expression=ERRORS) == []
    assert browser.evaluate(expression="document.body.dataset.backend") == "WASM"  # no GPU in headless CI
    # The server's headers isolate the page, so LiteRT.js runs one thread per core.
    assert browser.evaluate(expression="[self.crossOriginIsolated, Number(document.body.dataset.threads)]") == \
        [True, browser.evaluate(expression="navigator.hardwareConcurrency")]
    assert browser.evaluate(expression="[...document.querySelectorAll('#domain option')].map(o => o.text)") == \
        ["cat", "dog", "wild"]

    browser.setFiles(selector="#source-file", files=[picture(tmp_path / "source.png", 90, 60, 0)])
    browser.select(selector="#domain", value=str(WILD))
    browser.fill(selector="#seed", value="123456789")
    browser.fill(selector="#count", value="3")
    browser.evaluate(expression="(psi => { psi.value = '0.5'; psi.dispatchEvent(new Event('input')); })"
                                "(document.getElementById('psi'))")
    settle(browser, "document.querySelectorAll('#outputs figure').length === 3 && "
                    "document.querySelector('#outputs figure').dataset.seed === '123456789' && "
                    "document.querySelector('#outputs figure').dataset.psi === '0.5' && "
                    f"document.querySelector('#outputs figure').dataset.domain === '{WILD}'")
    source = canvas_rgb(browser, "#source")
    latent = interpreter.get_signature_runner("latent_guided")
    for offset, figure in enumerate(browser.evaluate(expression=FIGURES)):
        assert (figure["kind"], int(figure["seed"])) == ("latent", 123456789 + offset)
        z = np.array(json.loads(figure["z"]), np.float32)  # the z the page used
        np.testing.assert_allclose(z, latent_from_seed(123456789 + offset, 16), atol=1e-6)
        expected = latent(image=source[None], target_domain=np.array([WILD], np.int32), z=z[None],
                          psi=np.float32(0.5))["image"][0]
        value = psnr(rgba_to_rgb(figure["pixels"]), expected)
        assert value >= MIN_PSNR_DB, f"seed {figure['seed']}: {value:.1f} dB"
    assert "ms per translation on WASM" in browser.evaluate(expression="document.getElementById('timing').textContent")
    screenshot = tmp_path / "demo.png"
    browser.screenshot(path=str(screenshot))
    assert Image.open(screenshot).size[0] == 1000
    if os.environ.get("DEMO_SCREENSHOT"):  # README's picture: DEMO_SCREENSHOT=docs/demo.png pytest ...
        Image.open(screenshot).convert("RGB").quantize(64).save(os.environ["DEMO_SCREENSHOT"], optimize=True)

    browser.click(selector="#new-style")  # a random seed, a new row
    settle(browser, "document.querySelector('#outputs figure').dataset.seed !== '123456789'")

    browser.check(selector="input[name=mode][value=reference]")
    browser.setFiles(selector="#reference-file", files=[picture(tmp_path / "reference.png", 40, 40, 5)])
    settle(browser, "document.querySelector('#outputs figure')?.dataset.kind === 'reference'")
    reference = canvas_rgb(browser, "#reference")
    (figure,) = browser.evaluate(expression=FIGURES)
    expected = interpreter.get_signature_runner("reference_guided")(
        image=source[None], reference=reference[None], reference_domain=np.array([WILD], np.int32))["image"][0]
    value = psnr(rgba_to_rgb(figure["pixels"]), expected)
    assert value >= MIN_PSNR_DB, f"reference-guided: {value:.1f} dB"
    assert browser.evaluate(expression=ERRORS) == []



def test_page_runs_the_thread_count_asked_for(demo, browser):
    url = demo[0]
    open_page(browser, url + "?threads=1")
    assert browser.evaluate(expression=ERRORS) == []
    assert browser.evaluate(expression="document.body.dataset.threads") == "1"
    assert "on WASM, 1 thread(s)" in browser.evaluate(expression="document.getElementById('status').textContent")


def error_shown(browser, text):
    browser.waitFor(expression=f"{ERRORS}.some(message => message.includes({text!r}))")


def test_visitor_errors_are_shown_in_the_page(demo, browser, tmp_path):
    url, tflite, work = demo
    open_page(browser, url)
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("these are notes, not a picture\n")
    browser.setFiles(selector="#source-file", files=[str(not_an_image)])
    error_shown(browser, "notes.png is not an image this browser can open")

    huge = tmp_path / "huge.png"
    Image.new("1", (8000, 7000)).save(huge)  # 56 MP in a 7 kB file
    browser.setFiles(selector="#source-file", files=[str(huge)])
    error_shown(browser, "huge.png is 8000 x 7000 pixels (56 MP), over this page's limit of 50 MP")

    browser.setFiles(selector="#source-file", files=[picture(tmp_path / "fine.png", 32, 32, 2)])
    settle(browser, "document.querySelectorAll('#outputs figure').length > 0")
    assert browser.evaluate(expression=ERRORS) == []  # a good image clears the error

    rng = np.random.default_rng(0)
    broken = work / "broken.tflite"
    broken.write_bytes(rng.integers(0, 256, tflite.stat().st_size, np.uint8).tobytes())  # the right size, not a model
    browser.newPage()
    browser.route(url="**/model.tflite", bodyFile=str(broken))
    browser.goto(url=url)
    error_shown(browser, "The model file tiny.tflite failed to load")
    assert browser.evaluate(expression=STATE) == "error"

    broken.write_bytes(tflite.read_bytes()[:1000])  # a cut download
    browser.newPage()
    browser.route(url="**/model.tflite", bodyFile=str(broken))
    browser.goto(url=url)
    error_shown(browser, "Could not download the model file tiny.tflite: got 1000 of its")

    # A browser without Wasm SIMD: its WebAssembly.validate refuses every SIMD module.
    open_page(browser, url, init_script="WebAssembly.validate = () => false;")
    error_shown(browser, "This browser has no WebAssembly SIMD")
