"""The in-browser demo in headless Chromium: the page's translations equal LiteRT's in Python on the same
inputs, and the errors a visitor can cause are shown in the page.

A tiny random model is exported and converted to a float32 .tflite; `python -m stargan_keras.demo`
serves it on 127.0.0.1 and Debian's Chromium runs the page (benchmarks/browser.py, playwright-core).
Skips where Chromium, node or the npm packages (`npm ci`) are absent.
"""

import json

import numpy as np
import pytest
from PIL import Image

from benchmarks.browser import Browser
from benchmarks.screenshots import PAGE_HEIGHT, PAGE_WIDTH, act, capture, label
from tests.harness.demo import shared_tiny_tflite, tiny_demo
from tests.harness.v1 import make_tiny_v1_config
from tests.harness.page import (ERRORS, FIGURES, MIN_PSNR_DB, STATE, WILD, canvas_rgb,
                                open_page, picture, psnr, rgba_to_rgb, settle)

pytestmark = [pytest.mark.slow, pytest.mark.needs("browser")]

@pytest.fixture(scope="module")
def demo(tmp_path_factory, tiny_config):
    """(url, tflite path, a work directory): the demo command serving a tiny float32 StarGAN v2 .tflite."""
    with tiny_demo(shared_tiny_tflite(tmp_path_factory, tiny_config())) as (url, tflite):
        yield url, tflite, tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="module")
def demo_v1(tmp_path_factory):
    """(url, tflite path): the demo command serving a tiny float32 StarGAN v1 .tflite (labels Black_Hair,
    Blond_Hair, Male, Young: two hair colours, one choice)."""
    with tiny_demo(shared_tiny_tflite(tmp_path_factory, make_tiny_v1_config(), name="tiny_v1")) as served:
        yield served


@pytest.fixture(scope="module")
def browser():
    """One Chromium for the file: every test starts with `open_page`, whose new page has a fresh context."""
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


LABELS = "[...document.querySelectorAll('#labels input')].map(i => [i.parentElement.textContent.trim(), i.type, i.checked])"


def test_a_v1_page_translates_the_checked_attributes_as_litert_does(demo_v1, browser, tmp_path):
    from stargan_keras.serving.tflite import make_interpreter

    url, tflite = demo_v1
    translate = make_interpreter(tflite).get_signature_runner("translate")
    open_page(browser, url)
    assert browser.evaluate(expression=ERRORS) == []
    assert browser.evaluate(expression="document.getElementById('title').textContent") == "StarGAN v1 in the browser"
    assert browser.evaluate(expression="document.getElementById('controls').hidden") is True  # no v2 controls
    assert browser.evaluate(expression=LABELS) == [["Black_Hair", "radio", True], ["Blond_Hair", "radio", False],
                                                   ["Male", "checkbox", False], ["Young", "checkbox", False]]
    browser.setFiles(selector="#source-file", files=[picture(tmp_path / "source.png", 50, 70, 1)])
    source = None
    outputs = []
    for name, expected_labels in ((None, [1, 0, 0, 0]), ("Male", [1, 0, 1, 0]), ("Blond_Hair", [0, 1, 1, 0]),
                                  ("Young", [0, 1, 1, 1])):
        if name:
            act(browser, [label(name)])
        settle(browser, f"document.querySelector('#outputs figure')?.dataset.labels === '{json.dumps(expected_labels)}'"
                        .replace(", ", ","))
        source = canvas_rgb(browser, "#source") if source is None else source
        (figure,) = browser.evaluate(expression=FIGURES)
        output = rgba_to_rgb(figure["pixels"])
        expected = translate(image=source[None], target_labels=np.array([expected_labels], np.float32))["image"][0]
        value = psnr(output, expected)
        print(f"v1 page, labels {expected_labels}: {value:.1f} dB against LiteRT in Python; against the earlier "
              f"outputs: {', '.join(f'{psnr(output, other):.1f}' for other in outputs) or '-'} dB")
        assert value >= MIN_PSNR_DB, f"{expected_labels}: {value:.1f} dB"
        assert all(psnr(output, other) < 30 for other in outputs), f"{expected_labels} gave an earlier output"
        outputs.append(output)
    assert "label-guided" in browser.evaluate(expression="document.getElementById('timing').textContent")

    # README's screenshots are taken with `capture` (benchmarks/screenshots.py): the same path, on this model.
    shot = capture(browser, url, picture(tmp_path / "shot.png", 32, 32, 3), tmp_path / "demo_v1.png",
                   (label("Blond_Hair"),))
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.size[0] == PAGE_WIDTH and image.size[1] >= PAGE_HEIGHT
    assert browser.evaluate(expression="document.querySelector('#outputs figure').dataset.labels") == "[0,1,0,0]"


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
