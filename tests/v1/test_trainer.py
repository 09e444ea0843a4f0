"""StarGAN v1's training iteration against an independent PyTorch reference of the authors' algorithm."""

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
from tests.harness.checks import assert_close_logs, sign_agreement  # noqa: E402
from tests.harness.families import keras_weights  # noqa: E402
from tests.harness.v1 import make_tiny_v1_config, make_v1_batches, reference_settings  # noqa: E402

D_KEYS = [key for key in LOG_KEYS if key.startswith("D/")]


@pytest.fixture(scope="module")
def config():
    """Tiny networks, a G update every second iteration, CelebA-like attribute labels."""
    return make_tiny_v1_config(n_critic=2)


def _authors_files(config, directory):
    return ref.save_authors_checkpoints(ref.build_networks_like(config.model), directory)


@pytest.fixture(scope="module")
def authors_files(tmp_path_factory, config):
    return _authors_files(config, tmp_path_factory.mktemp("authors"))


def _model(config, authors_files, run_eagerly=False):
    model = StarGANv1(config)
    model.compile(run_eagerly=run_eagerly)
    model.load_authors_weights(*authors_files)
    return model


def _reference_run(config, batches, dtype):
    """The reference from the same weights, iteration i updating G when (i + 1) % n_critic == 0.

    On one thread: beside TensorFlow's pool, more threads make these tiny networks slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        nets = {name: net.to(dtype) for name, net in ref.build_networks_like(config.model).items()}
        optims = ref.make_optimizers(nets, reference_settings(config))
        snapshots, logs = [ref.weights(nets)], []
        for i, batch in enumerate(batches):
            update_generator = (i + 1) % config.train.n_critic == 0
            logs.append(ref.train_iteration(nets, optims, batch, reference_settings(config), update_generator, dtype))
            snapshots.append(ref.weights(nets))
    finally:
        torch.set_num_threads(threads)
    return logs, snapshots


@pytest.mark.parametrize("label_type, n_critic, eager", [("attributes", 1, False), ("categorical", 2, True)])
def test_two_iterations_match_the_pytorch_reference(label_type, n_critic, eager, tmp_path):
    """Every loss term, and the sign of every weight update, of two iterations.

    Attribute labels (CelebA: summed binary cross-entropies) through the compiled step, G updated
    on both iterations; categorical ones (RaFD: softmax) eagerly, which is faster and checks the same
    arithmetic, with a D-only iteration first.
    """
    config = make_tiny_v1_config(n_critic=n_critic, label_type=label_type)
    authors_files = _authors_files(config, tmp_path)
    batches = make_v1_batches(2, config.model)
    expected, ref64 = _reference_run(config, batches, torch.float64)
    _, ref32 = _reference_run(config, batches, torch.float32)
    model = _model(config, authors_files, run_eagerly=eager)
    initial = keras_weights(model)
    assert all(np.array_equal(value, ref32[0][key].astype(np.float32)) for key, value in initial.items())
    actual, ours = _iterate(model, batches)
    ours.insert(0, initial)
    assert list(actual[0]) == (D_KEYS if n_critic == 2 else list(LOG_KEYS)) and list(actual[1]) == list(LOG_KEYS)
    assert_close_logs(actual[0], expected[0], rtol=1e-4)
    assert_close_logs(actual[1], expected[1], rtol=1e-3)
    assert int(model.step.numpy()) == 2
    updates = [("discriminator", 0, 1), ("discriminator", 0, 2), ("generator", 1, 2)]
    if n_critic == 2:
        np.testing.assert_array_equal(_generator(ours[1]), _generator(ours[0]))  # no G update on iteration 1
    else:
        updates.append(("generator", 0, 2))
    for network, start, stop in updates:
        agree, share = sign_agreement(ours, ref32, ref64, network, start, stop, margin=0.05)
        assert share > 0.95 and agree >= 0.999, f"{network} {start}->{stop}: {agree:.5f} agree on {share:.3f}"


def _iterate(model, batches):
    """The logs of one distributed step per batch, and the weights after each."""
    logs, weights = [], []
    for batch in batches:
        logs.append(model.distributed_train_step(batch))
        weights.append(keras_weights(model))
    return logs, weights


def _generator(weights):
    return np.concatenate([v.ravel() for k, v in sorted(weights.items()) if k.startswith("generator/")])


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
    assert abs(float(penalty) - want.item()) <= 1e-4 * abs(want.item())
    for key, param in torch_d.named_parameters():
        if param.grad is None:  # the classification head: not on the penalty's path
            assert key == "conv2.weight" and grads[key] is None
            continue
        ours = np.asarray(grads[key])
        ours = ours.transpose(3, 2, 0, 1) if ours.ndim == 4 else ours
        theirs = param.grad.numpy()
        np.testing.assert_allclose(ours, theirs, atol=1e-3 * np.abs(theirs).max(), rtol=0, err_msg=key)


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
        np.testing.assert_allclose(keras_weights(fitted)[key], value, rtol=0, atol=1e-6, err_msg=key)

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
