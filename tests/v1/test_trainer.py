"""StarGAN v1's trainer: the gradient penalty against PyTorch, the n_critic rhythm, resuming and the learning rates.

Its iterations against the independent PyTorch reference of the authors' algorithm are `tests/test_families.py`'s.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tests.harness.components import require

torch = require("torch")

from stargan_keras.core.layers import torch_named_variables  # noqa: E402
from stargan_keras.v1.losses import gradient_penalty, learning_rate_at  # noqa: E402
from stargan_keras.v1.trainer import LOG_KEYS, StarGANv1  # noqa: E402
from tests.references import torch_stargan_v1 as ref  # noqa: E402
from tests.harness.families import keras_weights  # noqa: E402
from tests.harness.v1 import make_tiny_v1_config, make_v1_batches  # noqa: E402

D_KEYS = [key for key in LOG_KEYS if key.startswith("D/")]
GP_RTOL = 5e-7  # of the reference's penalty; measured 1.1e-8, below float32's resolution: the floor is a few ulps (1.2e-7)
GP_GRADIENT_RTOL = 3e-6  # of each weight's largest reference gradient; measured 2.9e-7 (main.2.weight)


@pytest.fixture(scope="module")
def config():
    """Tiny networks, a G update every second iteration, CelebA-like attribute labels."""
    return make_tiny_v1_config(n_critic=2)


@pytest.fixture(scope="module")
def authors_files(tmp_path_factory, config):
    return ref.save_authors_checkpoints(ref.build_networks_like(config.model), tmp_path_factory.mktemp("authors"))


def _model(config, authors_files, run_eagerly=False):
    model = StarGANv1(config)
    model.compile(run_eagerly=run_eagerly)
    model.load_authors_weights(*authors_files)
    return model


def test_gradient_penalty_and_its_second_derivative_match_pytorch(config, authors_files):
    """The penalty and its gradient with respect to D's weights (through the input gradient) in float64."""
    model = _model(config, authors_files, run_eagerly=True)
    D = model.nets.discriminator
    batch = make_v1_batches(1, config.model, seed=3)[0]
    x_fake = np.asarray(model.nets.generator(batch["x_real"], batch["c_trg"]))
    with tf.GradientTape() as tape:
        penalty = tf.reduce_mean(gradient_penalty(D, batch["x_real"], x_fake, batch["alpha"]))
    named = torch_named_variables(D)
    grads = dict(zip(named, tape.gradient(penalty, list(named.values()))))

    torch_d = ref.build_networks_like(config.model)["discriminator"].double()
    alpha = torch.from_numpy(batch["alpha"]).double().view(-1, 1, 1, 1)
    x_hat = (alpha * ref.nchw(batch["x_real"], torch.float64)
             + (1 - alpha) * ref.nchw(x_fake, torch.float64)).requires_grad_(True)
    src, _ = torch_d(x_hat)
    grad = torch.autograd.grad(src, x_hat, torch.ones_like(src), create_graph=True)[0]
    want = ((grad.flatten(1).pow(2).sum(1).sqrt() - 1) ** 2).mean()
    want.backward()
    assert abs(float(penalty) - want.item()) <= GP_RTOL * abs(want.item())
    for key, param in torch_d.named_parameters():
        if param.grad is None:  # the classification head: not on the penalty's path
            assert key == "conv2.weight" and grads[key] is None
            continue
        ours = np.asarray(grads[key])
        ours = ours.transpose(3, 2, 0, 1) if ours.ndim == 4 else ours
        theirs = param.grad.numpy()
        np.testing.assert_allclose(ours, theirs, atol=GP_GRADIENT_RTOL * np.abs(theirs).max(), rtol=0, err_msg=key)


def test_fit_follows_the_n_critic_rhythm_and_the_checkpoint_restores_it(config, authors_files, tmp_path):
    """`fit` over three batches equals three `distributed_train_step`s (G updated on the second only); a restored
    checkpoint continues identically.

    Eager throughout, to be fast and exact: compiled and eager steps differ in rounding, which flips the
    Adam steps of entries whose exact gradient is zero (the label planes' taps that always fall inside
    the image in G's first conv: instance norm removes their constant response), as it would in PyTorch.
    The compiled step is checked against the reference above."""
    batches = make_v1_batches(3, config.model, seed=5)
    stepped = _model(config, authors_files, run_eagerly=True)
    for batch in batches:
        logs = stepped.distributed_train_step(batch)
    assert set(logs) == set(D_KEYS)  # the third iteration (step 2 -> 3) updates D only with n_critic 2
    fitted = _model(config, authors_files, run_eagerly=True)
    data = tf.data.Dataset.from_tensor_slices({k: np.stack([b[k] for b in batches]) for k in batches[0]})
    fitted.fit(data, epochs=1, verbose=0, shuffle=False)
    assert int(fitted.step.numpy()) == 3
    for key, value in keras_weights(stepped).items():
        # fit and the stepped iterations run the same kernels: measured identical (was atol 1e-6)
        np.testing.assert_array_equal(keras_weights(fitted)[key], value, err_msg=key)

    prefix = stepped.checkpoint().save(str(tmp_path / "ckpt"))
    restored = StarGANv1(config)
    restored.compile(run_eagerly=True)
    restored.checkpoint().restore(prefix).assert_existing_objects_matched()
    assert int(restored.step.numpy()) == 3
    more = make_v1_batches(1, config.model, seed=6)[0]  # step 3 -> 4: a G iteration for both
    np.testing.assert_equal({k: float(v) for k, v in restored.distributed_train_step(more).items()},
                            {k: float(v) for k, v in stepped.distributed_train_step(more).items()})


@pytest.mark.parametrize("total_iters", [50, 12])  # the decay over the last 20 iterations, or from the start
def test_learning_rate_schedules_follow_the_paper_and_the_released_code(total_iters):
    decay, update, lr0 = 20, 3, 1e-4
    lr = lr0  # the authors' loop: after iteration i, every `update` iterations within the last `decay`
    for i in range(total_iters):
        got = float(learning_rate_at(i, lr0, total_iters, decay, "released", update))
        assert got == pytest.approx(lr, rel=1e-6), i
        if (i + 1) % update == 0 and (i + 1) > total_iters - decay:
            lr -= lr0 / decay
    for step in (0, total_iters - decay, total_iters - 5, total_iters):  # the paper: linearly to 0
        want = lr0 * min(1.0, (total_iters - step) / decay)
        assert float(learning_rate_at(step, lr0, total_iters, decay, "linear")) == pytest.approx(want, rel=1e-6)
    assert float(learning_rate_at(total_iters - 1, lr0, total_iters, decay, "none")) == pytest.approx(lr0)


def test_the_optimizers_follow_the_step_counter(config):
    model = StarGANv1(config.replace(total_iters=100, num_iters_decay=40, g_lr=2e-4, d_lr=1e-4))
    model.compile(run_eagerly=True)
    model.step.assign(80)  # e.g. restored from a checkpoint: half-way through the decay
    assert float(model.optimizers["generator"].learning_rate) == pytest.approx(1e-4, rel=1e-6)
    assert float(model.optimizers["discriminator"].learning_rate) == pytest.approx(5e-5, rel=1e-6)
