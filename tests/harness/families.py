"""The family harness: what the checks every model family must pass (`tests/test_families.py`) need of each
one. Adding a family to the registry means adding its case here.

Imported by the replica worker, a fresh process without pytest: nothing here imports pytest or torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from tests.harness import authors, v1, v2


@dataclass(frozen=True)
class ParityRun:
    """Iterations of the trainer from the reference's weights, compared with the reference's."""

    name: str
    overrides: dict  # config fields of this run (on top of the case's `training`)
    iterations: int
    eager: bool  # run_eagerly: the same arithmetic as the compiled step, and faster to start for a few steps
    slow: bool = False


@dataclass(frozen=True)
class FamilyCase:
    """A family's tiny model and batches, and the facts the shared checks compare against."""

    name: str
    tiny_config: Callable  # (**config overrides) -> a config of tiny networks
    make_batches: Callable  # (config, count, seed) -> training batches of the config's global batch size (4)
    build_trainer: Callable  # (config, run_eagerly) -> the compiled trainer (call it inside a strategy's scope)
    trainer_module: str  # where the trainer and its LOG_KEYS are
    # Adam's first steps are about +-lr for every entry whatever the size of its gradient, so an entry whose
    # gradient is rounding noise takes a step whose sign the order of the replicas' sum decides. With epsilon 1
    # and lr 1e-2 the steps are lr * g / (|g| + 1), smooth in g: two runs' updates then differ by rounding alone,
    # and a gradient off by any factor shows in them.
    smooth_adam: dict
    before_any_update: tuple[str, ...]  # the logs of iteration 0 computed before the first update
    mixed_precision: dict  # the config of the mixed-precision check (with its FAN where the family has one)
    authors_files: Callable  # (config, directory, seed) -> (reference networks, checkpoint, discriminator file)
    reference_outputs: Callable  # (reference networks, translator, rng) -> [(what, ours, the reference's)]
    load_authors_weights: Callable  # (trainer, checkpoint, discriminator file) of `authors_files`
    training: dict  # the parity runs' config fields, the literal settings the reference is given too
    parity_runs: tuple  # ParityRun: the training runs compared with the reference
    reference_iterations: Callable  # (config, batches, seed, run overrides) -> (logs, weights before and after each)
    # The parity runs' relative errors: of the losses computed before any update, of the later ones, and of every
    # network's updates since the start over its largest (beyond 4 ulp of the float32 weight).
    parity_rtol: dict
    # Tiny-config overrides giving some convolution a map of at most SMALL_MAP_SIZE pixels and SMALL_MAP_MIN_FILTERS
    # filters, so that the CPU forms (`core.layers.Conv2D`) run one as a matrix product.
    small_map_widths: dict = field(default_factory=dict)

    @property
    def log_keys(self) -> tuple[str, ...]:
        import importlib

        return tuple(importlib.import_module(self.trainer_module).LOG_KEYS)


def _v2_trainer(config, run_eagerly=False):
    """StarGANv2, with a random face-landmark network for a w_hpf > 0 config."""
    from stargan_keras.face.fan import build_fan

    return v2.build_model(config, run_eagerly=run_eagerly, fan=build_fan() if config.model.w_hpf > 0 else None)


def _v1_trainer(config, run_eagerly=False):
    from stargan_keras.v1.trainer import StarGANv1

    model = StarGANv1(config)
    model.compile(run_eagerly=run_eagerly)
    return model


CASES = {
    "v2": FamilyCase(
        "v2", lambda **overrides: v2.make_tiny_config(**{"batch_size": 4, "lambda_ds": 2.0, "ds_iter": 10, **overrides}),
        lambda config, count, seed=0: v2.make_batches(count, config.train.batch_size, img_size=config.model.img_size,
                                                      num_domains=config.model.num_domains,
                                                      latent_dim=config.model.latent_dim, seed=seed),
        _v2_trainer, "stargan_keras.v2.trainer", dict(epsilon=1.0, lr=1e-2, f_lr=1e-2),
        # Batch 2 under mixed precision: every iteration runs the FAN (256 px) on the images in several passes.
        ("D/latent_real", "D/latent_fake", "D/latent_reg"), dict(w_hpf=1.0, num_domains=2, batch_size=2),
        authors.v2_files, authors.v2_outputs,
        load_authors_weights=lambda model, ema, nets: model.load_authors_weights(nets, ema),
        training={**v2.ADAM, **v2.LAMBDAS, "lambda_ds": v2.LAMBDA_DS, "ds_iter": v2.DS_ITER},
        parity_runs=(ParityRun("eager", {}, 1, eager=True), ParityRun("compiled", {}, 3, eager=False, slow=True)),
        reference_iterations=authors.v2_iterations,
        parity_rtol=dict(before_update=2e-6,  # measured 1.3e-7
                         after_update=8e-5,  # measured 7.6e-6 (G/ref_adv)
                         update=4e-3),  # measured 3.9e-4 (eager D), 3.1e-4 (compiled, EMA G); others 3e-5
        small_map_widths=dict(max_conv_dim=64)),
    "v1": FamilyCase(
        "v1", lambda **overrides: v1.make_tiny_v1_config(**{"n_critic": 2, **overrides}),
        lambda config, count, seed=0: v1.make_v1_batches(count, config.model, config.train.batch_size, seed=seed),
        _v1_trainer, "stargan_keras.v1.trainer", dict(epsilon=1.0, g_lr=1e-2, d_lr=1e-2),
        ("D/loss_real", "D/loss_fake", "D/loss_cls", "D/loss_gp"), dict(n_critic=1),
        authors.v1_files, authors.v1_outputs,
        load_authors_weights=lambda model, generator, discriminator: model.load_authors_weights(generator,
                                                                                                 discriminator),
        training={**v1.ADAM, **v1.LAMBDAS},
        # CelebA's attributes (summed binary cross-entropies) through the compiled step, G updated every iteration;
        # RaFD's classes (softmax) eagerly, a D-only iteration first.
        parity_runs=(ParityRun("attributes", dict(label_type="attributes", n_critic=1), 2, eager=False),
                     ParityRun("categorical", dict(label_type="categorical", n_critic=2), 2, eager=True)),
        reference_iterations=authors.v1_iterations,
        parity_rtol=dict(before_update=2e-6,  # measured 1.8e-7
                         after_update=3e-6,  # measured 2.5e-7
                         update=7e-5),  # measured 6.3e-6 (G)
        small_map_widths=dict(d_conv_dim=16)),
}
def keras_weights(model) -> dict:
    """{network/torch key: array in PyTorch layout} of the trained networks and the EMA copies a family keeps."""
    from stargan_keras.core.layers import torch_named_variables
    from stargan_keras.core.torch_io import torch_shape

    out = {}
    groups = (("", model.nets), ("ema_", getattr(model, "nets_ema", None)))  # StarGAN v1 keeps no EMA copies
    for prefix, networks in groups:
        for name, network in networks.items() if networks is not None else ():
            for key, variable in torch_named_variables(network).items():
                value = np.asarray(variable)
                value = value.transpose(3, 2, 0, 1) if value.ndim == 4 else value.T if value.ndim == 2 else value
                assert value.shape == torch_shape(variable.shape)
                out[f"{prefix}{name}/{key}"] = value
    return out


def two_iterations(case: FamilyCase, model, config, step=None) -> dict:
    """Logs and weights after two iterations on the case's fixed batches (global batch 4), each iteration
    `step(batch)` (by default the trainer's `distributed_train_step`)."""
    step = step or model.distributed_train_step
    logs = [step(batch) for batch in case.make_batches(config, 2)]
    result = {f"log/{i}/{key}": float(value) for i, step_logs in enumerate(logs) for key, value in step_logs.items()}
    result.update(keras_weights(model))
    result["step"] = int(model.step.numpy())
    return result
