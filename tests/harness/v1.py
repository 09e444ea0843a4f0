"""The StarGAN v1 tests' tiny config and random batches (no pytest or torch imports here)."""

from __future__ import annotations

import numpy as np

# 32 px, widths 8-32, 2 residual blocks, 3 stride-2 convs in D (a 4x4 classification head), 4 labels; the paper's
# 200,000 iterations, so that the learning rates stay constant over the first ones (as in the reference).
TINY_V1 = dict(image_size=32, c_dim=4, selected_attrs=["Black_Hair", "Blond_Hair", "Male", "Young"],
               g_conv_dim=8, d_conv_dim=8, g_repeat_num=2, d_repeat_num=3, batch_size=4, total_iters=200_000)


# The train command's flags for tiny v1 shapes runs (16 px, widths 4, one residual block; add the step counts).
TINY_V1_TRAIN = ["--model", "v1", "--image-size", "16", "--d-repeat-num", "2", "--g-conv-dim", "4", "--d-conv-dim",
                 "4", "--g-repeat-num", "1", "--n-critic", "2", "--lr-decay", "none", "--batch-size", "2",
                 "--shapes-train-per-domain", "4", "--shapes-val-per-domain", "2"]


def make_tiny_v1_config(**overrides):
    """A v1 Config of tiny networks; overrides are config fields of any section."""
    from stargan_keras.v1.config import Config

    return Config().replace(**{**TINY_V1, **overrides})


# The parity tests' optimisation settings, each distinct and none the default, given to the trainer (as config fields)
# and to the PyTorch reference (as arguments) alike. Adam's epsilon is about the gradients' size, so that an update is
# a smooth function of its gradient (lr * g / (|g| + epsilon) at the first step): updates then compare as numbers,
# and a loss weight off by any factor shows in them.
ADAM = dict(g_lr=7e-3, d_lr=1.1e-2, beta1=0.3, beta2=0.95, epsilon=0.6)
LAMBDAS = dict(lambda_cls=1.7, lambda_rec=4.3, lambda_gp=6.1)


def reference_labels(v1) -> dict:
    """What the reference needs to know of the labels, from a V1 model config."""
    return {"label_type": v1.label_type, "c_dim": v1.c_dim, "c2_dim": v1.c2_dim}


def make_v1_batches(count, v1, size=4, seed=0):
    """`count` batches: random images, random labels (one-hot for categorical labels), their permutation
    as targets (the authors' c_trg), and per-example interpolation weights."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(count):
        if v1.label_type == "categorical":
            c_org = np.eye(v1.c_dim, dtype="float32")[rng.integers(0, v1.c_dim, size)]
        else:
            c_org = rng.integers(0, 2, (size, v1.c_dim)).astype("float32")
        batches.append(dict(x_real=rng.uniform(-1, 1, (size, v1.image_size, v1.image_size, 3)).astype("float32"),
                            c_org=c_org, c_trg=c_org[rng.permutation(size)],
                            alpha=rng.uniform(0, 1, size).astype("float32")))
    return batches
