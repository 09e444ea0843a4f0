"""The training tests' trainer, fixed batches and weights in PyTorch layout.

Shared by `test_trainer` and `replica_worker`, which runs in a fresh process without pytest,
so nothing here imports pytest or torch.
"""

from __future__ import annotations

import numpy as np


def make_batches(count, size=4, img_size=32, num_domains=3, latent_dim=16, seed=0):
    """`count` training batches of random images, labels and latents (the trainer's batch keys)."""
    rng = np.random.default_rng(seed)

    def images():
        return rng.uniform(-1, 1, (size, img_size, img_size, 3)).astype("float32")

    return [dict(x_src=images(), y_src=rng.integers(0, num_domains, size).astype("int32"), x_ref=images(),
                 x_ref2=images(), y_trg=rng.integers(0, num_domains, size).astype("int32"),
                 z_trg=rng.normal(size=(size, latent_dim)).astype("float32"),
                 z_trg2=rng.normal(size=(size, latent_dim)).astype("float32")) for _ in range(count)]


def build_model(config, nets_ckpt=None, nets_ema_ckpt=None, run_eagerly=False, fan=None):
    """The trainer on `config`, compiled, with the upstream-format weights when given (and the FAN of a
    w_hpf > 0 config)."""
    from stargan_keras.v2.trainer import StarGANv2

    model = StarGANv2(config, fan=fan)
    model.compile(run_eagerly=run_eagerly)
    if nets_ckpt is not None:
        model.load_authors_weights(nets_ckpt, nets_ema_ckpt)
    return model


def keras_weights(model) -> dict:
    """{network/torch key: array in PyTorch layout} of the trained and EMA networks."""
    from stargan_keras.core.layers import torch_named_variables
    from stargan_keras.core.torch_io import torch_shape

    out = {}
    groups = (("", model.nets), ("ema_", getattr(model, "nets_ema", None)))  # StarGAN v1 has no EMA networks
    for prefix, networks in groups:
        for name, network in networks.items() if networks is not None else ():
            for key, variable in torch_named_variables(network).items():
                value = np.asarray(variable)
                value = value.transpose(3, 2, 0, 1) if value.ndim == 4 else value.T if value.ndim == 2 else value
                assert value.shape == torch_shape(variable.shape)
                out[f"{prefix}{name}/{key}"] = value
    return out
