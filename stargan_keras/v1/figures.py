"""StarGAN v1's figures: the authors' translation grid and label-interpolation strips, and the training callback.

The translation grid is the authors' sample and test figure (yunjey/stargan `solver.py`,
`train` and `test`): one row per input image, the input first, then its translation to
each test-time target label vector (`labels.model_target_labels`: hair colours set
exclusively, other attributes flipped, every class of a categorical dataset; in joint
mode CelebA's targets then RaFD's). The interpolation strips move one label at a time
from the image's own value to its target in equal steps, which shows whether G has
learnt a continuous control.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stargan_keras.core.callbacks import PeriodicSamples
from stargan_keras.core.imaging import make_grid
from stargan_keras.v1.labels import model_target_labels

INTERPOLATION_STEPS = 6  # images per strip, the image's own labels to the target, both included


def translations(generator, x, c_org, v1) -> list[np.ndarray]:
    """G(x, target) for every test-time target vector, each [N, H, W, 3] in [-1, 1]."""
    return [np.asarray(generator(x, target)) for target in model_target_labels(c_org, v1)]


def translation_grid(generator, x, c_org, v1) -> np.ndarray:
    """Rows [x_i, G(x_i, target_1), ..., G(x_i, target_C)], uint8."""
    outputs = translations(generator, x, c_org, v1)
    return make_grid([[x[i]] + [out[i] for out in outputs] for i in range(len(x))])


def interpolation_grid(generator, x, c_org, v1, steps: int = INTERPOLATION_STEPS) -> np.ndarray:
    """Row i: x_i, then G(x_i, (1 - t) c_org + t target) for t from 0 to 1, the target changing label i mod C."""
    c_org = np.asarray(c_org, np.float32)
    targets = model_target_labels(c_org, v1)
    chosen = np.stack([targets[i % len(targets)][i] for i in range(len(x))])
    columns = []
    for t in np.linspace(0.0, 1.0, steps, dtype=np.float32):
        columns.append(np.asarray(generator(x, (1.0 - t) * c_org + t * chosen)))
    return make_grid([[x[i]] + [column[i] for column in columns] for i in range(len(x))])


def sample_figures(generator, batch: dict, v1) -> dict[str, np.ndarray]:
    """The grids of a sample step, by name."""
    x, c_org = batch["x_real"], batch["c_org"]
    return {"translations": translation_grid(generator, x, c_org, v1),
            "interpolation": interpolation_grid(generator, x, c_org, v1)}


class TranslationGrids(PeriodicSamples):
    """`sample_figures` of a fixed test batch, with the generator the trainer updates in place."""

    def __init__(self, config, generator, batch: dict, every: int, samples_dir, writer):
        super().__init__(every, samples_dir, writer)
        self.model_config, self.generator, self.batch = config.model, generator, batch

    def grids(self) -> dict[str, np.ndarray]:
        return sample_figures(self.generator, self.batch, self.model_config)


def write_test_figures(translator, out_dir, rows: int = 8, progress: bool = True) -> dict[str, Path]:
    """The authors' test mode (yunjey/stargan `Solver.test`): `rows` images of the model's own test split (the
    labels their targets derive from come with them), as `translations.jpg` and `interpolation.jpg` in `out_dir`."""
    from stargan_keras.core.imaging import save_image
    from stargan_keras.v1.data import fixed_test_batch, load_labelled

    config = translator.config
    batch = fixed_test_batch(config, load_labelled(config, progress=progress), rows)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return {name: save_image(out_dir / f"{name}.jpg", grid)
            for name, grid in sample_figures(translator.generator, batch, config.model).items()}
