"""StarGAN v2's tiny config, trainer and fixed batches for the tests.

Shared by the tests and `replica_worker`, which runs in a fresh process without pytest, so nothing
here imports pytest or torch.
"""

from __future__ import annotations

import numpy as np

TINY_DOMAINS = ("cat", "dog", "wild")
TINY_MODEL = dict(img_size=32, num_domains=3, domain_names=list(TINY_DOMAINS), w_hpf=0.0, base_dim=8,
                  max_conv_dim=32, mapping_hidden_dim=32)

# The parity tests' optimisation settings, each distinct and none the default, given to the trainer (as config fields)
# and to the PyTorch reference (as arguments) alike. Adam's epsilon is about the gradients' size, so that an update is
# a smooth function of its gradient (lr * g / (|g| + epsilon) at the first step): updates then compare as numbers,
# and a loss weight off by any factor shows in them.
ADAM = dict(lr=9e-3, f_lr=6e-3, beta_1=0.2, beta_2=0.95, epsilon=0.7, weight_decay=2e-3)
LAMBDAS = dict(lambda_reg=1.3, lambda_sty=0.6, lambda_cyc=1.8, ema_beta=0.9)
LAMBDA_DS, DS_ITER = 2.4, 10
# The authors' settings (the paper's and the config's defaults), for continuing their training.
AUTHORS_ADAM = dict(lr=1e-4, f_lr=1e-6, beta_1=0.0, beta_2=0.99, epsilon=1e-8, weight_decay=1e-4)
AUTHORS_LAMBDAS = dict(lambda_reg=1.0, lambda_sty=1.0, lambda_cyc=1.0, ema_beta=0.999)


def make_tiny_config(**overrides):
    """The afhq preset with networks small enough for tests: 32 px, widths 8-32, three named domains.

    Overrides are config fields (any section), e.g. img_size=16 or num_domains=2.
    """
    from stargan_keras.families import load_config

    fields = {**TINY_MODEL, **overrides}
    if "num_domains" in overrides and "domain_names" not in overrides:
        fields["domain_names"] = []
    return load_config("afhq").replace(**fields)


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
