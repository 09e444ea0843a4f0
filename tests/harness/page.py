"""What the in-browser demo's tests share: reading the page's canvases and state, the test pictures, PSNR."""

from __future__ import annotations

import numpy as np
from PIL import Image

MIN_PSNR_DB = 40.0
WILD = 2  # tiny_config's domains: cat, dog, wild
STATE = "document.body.dataset.state"
ERRORS = "[...document.querySelectorAll('#errors li')].map(item => item.textContent)"
FIGURES = """[...document.querySelectorAll('#outputs figure')].map(figure => ({
    ...figure.dataset,
    pixels: Array.from(figure.querySelector('canvas').getContext('2d').getImageData(0, 0, 32, 32).data)}))"""


def canvas_rgb(browser, selector):
    """A 32 x 32 canvas of the page as uint8 [32, 32, 3] (the page draws the model's inputs with alpha 255)."""
    rgba = browser.evaluate(expression=f"""Array.from(document.querySelector('{selector}').getContext('2d')
                                           .getImageData(0, 0, 32, 32).data)""")
    return rgba_to_rgb(rgba)


def rgba_to_rgb(rgba):
    rgba = np.array(rgba, np.uint8).reshape(32, 32, 4)
    assert (rgba[..., 3] == 255).all()
    return rgba[..., :3]


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def picture(path, width, height, index):
    """A scene of the `shapes` data set as a width x height file (the page resizes the whole picture to S x S)."""
    from stargan_keras.data.shapes import generate_shapes

    scene = generate_shapes(2, img_size=96, seed=5).images[index]
    Image.fromarray(scene).resize((width, height), Image.BILINEAR).save(path)
    return str(path)


def open_page(browser, url, init_script=None):
    browser.newPage(initScript=init_script, width=1000, height=560)
    browser.goto(url=url)
    browser.waitFor(expression=f"{STATE} !== 'loading'")


def settle(browser, condition):
    """Wait until the page has rendered and `condition` (JS) holds."""
    browser.waitFor(expression=f"{STATE} === 'ready' && ({condition})")
