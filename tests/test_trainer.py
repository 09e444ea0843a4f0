"""The training iteration against an independent PyTorch reference, across replicas and precisions.

The replica test starts `tests.replica_worker` processes: logical CPU devices and TF_CONFIG must
be set before TensorFlow initialises, i.e. in a fresh process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

torch = pytest.importorskip("torch")

from stargan_keras.face.fan import build_fan, load_fan_checkpoint  # noqa: E402
from stargan_keras.v2.losses import lambda_ds_at  # noqa: E402
from stargan_keras.v2.trainer import LOG_KEYS  # noqa: E402
from stargan_keras.core.trainer_base import TorchAdam  # noqa: E402
from tests.net_helpers import free_ports  # noqa: E402
from tests.references import torch_fan  # noqa: E402
from tests.references import torch_training as ref  # noqa: E402
from tests.references.torch_stargan_v2 import build_networks_like, save_upstream_checkpoints  # noqa: E402
from tests.trainer_helpers import build_model, keras_weights, make_batches  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def config(tiny_config):
    """The tiny networks (32 px, 3 domains, w_hpf 0: the AFHQ setting), a global batch of 4."""
    return tiny_config(batch_size=4, lambda_ds=2.0, ds_iter=10)


def assert_close_logs(actual: dict, expected: dict, rtol: float):
    assert set(actual) == set(expected)
    for key, value in expected.items():
        assert abs(float(actual[key]) - value) <= rtol * abs(value), f"{key}: {float(actual[key])} vs {value}"


@pytest.fixture(scope="module")
def upstream_checkpoints(tmp_path_factory, config):
    directory = tmp_path_factory.mktemp("upstream")
    save_upstream_checkpoints(build_networks_like(config.model), directory)
    return directory


def _trained_model(config, upstream_checkpoints, run_eagerly=False):
    """The trainer starting from the reference networks' weights (the fixture's upstream checkpoints)."""
    return build_model(config, upstream_checkpoints / "100000_nets.ckpt",
                       upstream_checkpoints / "100000_nets_ema.ckpt", run_eagerly=run_eagerly)


def _reference_run(config, batches, dtype):
    """The PyTorch reference on one thread: beside TensorFlow's pool, more threads make these tiny networks slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        nets = {name: net.to(dtype) for name, net in build_networks_like(config.model).items()}
        nets_ema = ref.ema_copies(nets)
        snapshots = []
        logs = ref.train(nets, nets_ema, ref.make_optimizers(nets), batches, lambda_ds0=config.train.lambda_ds,
                         ds_iter=config.train.ds_iter, snapshots=snapshots)
    finally:
        torch.set_num_threads(threads)
    return logs, snapshots


def _update(snapshots, network, start, stop):
    keys = sorted(k for k in snapshots[0] if k.split("/")[0] == network)
    return np.concatenate([(snapshots[stop][k] - snapshots[start][k]).ravel() for k in keys])


def _sign_agreement(ours, ref32, ref64, network, start, stop, margin):
    """Fraction of same-sign updates on the entries float32 arithmetic can resolve, and their share.

    Adam turns any gradient entry, however small, into a step of about +-lr, so
    entries whose exact gradient is zero or below float32 rounding (e.g. the
    bias of a conv followed by instance normalisation) get random signs in any
    float32 implementation, PyTorch's included. Counted are the entries where
    PyTorch in float32 gets the float64 reference's sign and whose float64
    update is not a near-cancellation of successive steps (|update| > margin * lr).
    """
    lr = 1e-6 if network == "mapping_network" else 1e-4
    mine, theirs, exact = (_update(s, network, start, stop) for s in (ours, ref32, ref64))
    resolvable = (np.sign(theirs) == np.sign(exact)) & (np.abs(exact) > margin * lr)
    return float(np.mean(np.sign(mine[resolvable]) == np.sign(theirs[resolvable]))), float(resolvable.mean())


@pytest.mark.slow
def test_three_iterations_match_the_pytorch_reference(config, upstream_checkpoints):
    """Compiled steps vs the plain PyTorch algorithm: every loss term, and the sign of every weight update."""
    batches = make_batches(3)
    expected, ref64 = _reference_run(config, batches, torch.float64)
    _, ref32 = _reference_run(config, batches, torch.float32)
    model = _trained_model(config, upstream_checkpoints)
    ours = [keras_weights(model)]
    for key, value in ours[0].items():
        np.testing.assert_array_equal(value, ref32[0][key].astype(np.float32), err_msg=key)
    actual = []
    for batch in batches:
        actual.append(model.distributed_train_step(batch))
        ours.append(keras_weights(model))
    assert list(actual[0]) == list(LOG_KEYS)
    assert_close_logs(actual[0], expected[0], rtol=1e-4)
    for got, want in zip(actual[1:], expected[1:]):
        assert_close_logs(got, want, rtol=1e-3)
    assert int(model.step.numpy()) == 3

    for network in ("generator", "mapping_network", "style_encoder", "discriminator"):
        agree, share = _sign_agreement(ours, ref32, ref64, network, 0, 1, margin=0.05)
        assert share > 0.95 and agree >= 0.999, f"iteration 1, {network}: {agree:.5f} agree on {share:.3f}"
        agree, share = _sign_agreement(ours, ref32, ref64, network, 0, 3, margin=0.3)
        assert share > 0.85 and agree >= 0.999, f"iterations 1-3, {network}: {agree:.5f} agree on {share:.3f}"
    for i in (1, 3):  # w_ema <- lerp(w, w_ema, 0.999) of our own weights, every EMA network
        for key, ema in ours[i].items():
            if key.startswith("ema_"):
                trained = ours[i][key[len("ema_"):]].astype(np.float64)
                want = trained + 0.999 * (ours[i - 1][key].astype(np.float64) - trained)
                np.testing.assert_allclose(ema, want, rtol=0, atol=2e-7 * max(1.0, np.abs(want).max()), err_msg=key)


@pytest.mark.slow
def test_one_iteration_with_face_masks_matches_the_pytorch_reference(tiny_config, tmp_path):
    """w_hpf = 1 with a FAN (the CelebA-HQ setting): G gets the masks of x_real in every pass but the cycle's,
    which gets those of x_fake; the loss terms show which masks the cycle took."""
    config = tiny_config(img_size=64, num_domains=2, w_hpf=1.0, base_dim=4, max_conv_dim=16, batch_size=4,
                         lambda_ds=2.0, ds_iter=10)
    fan_t = torch_fan.randomize(torch_fan.TorchFAN(), seed=3)
    fan = load_fan_checkpoint(torch_fan.save_wing_checkpoint(fan_t, tmp_path / "wing.ckpt"))
    upstream = tmp_path / "upstream"
    save_upstream_checkpoints(build_networks_like(config.model), upstream)
    batch = make_batches(1, img_size=64, num_domains=2)[0]

    def reference(masks_of):
        nets = build_networks_like(config.model)
        return ref.train_iteration(nets, ref.ema_copies(nets), ref.make_optimizers(nets), batch,
                                   lambda_ds=config.train.lambda_ds, masks_of=masks_of)

    def authors_masks(x):
        return torch_fan.get_heatmap(fan_t, x)

    x_real = ref.to_torch({"x_src": batch["x_src"]})["x_src"]
    masks_real = authors_masks(x_real)
    assert all(0.02 < float((m > 0).float().mean()) < 0.98 for m in masks_real), "degenerate masks"
    expected = reference(authors_masks)
    cycle_on_real_masks = reference(lambda x: masks_real)
    no_masks = reference(None)

    model = build_model(config, upstream / "100000_nets.ckpt", upstream / "100000_nets_ema.ckpt", fan=fan)
    actual = model.distributed_train_step(batch)
    del actual["G/lambda_ds"]
    assert_close_logs(actual, expected, rtol=1e-4)
    for key in ("G/latent_cyc", "G/ref_cyc"):
        for other in (cycle_on_real_masks, no_masks):
            assert abs(other[key] - expected[key]) > 10 * 1e-4 * abs(expected[key]), (key, other[key], expected[key])
    for key in ("D/latent_fake", "G/latent_adv", "G/ref_ds"):  # the passes on x_real's masks
        assert abs(no_masks[key] - expected[key]) > 10 * 1e-4 * abs(expected[key]), key


def test_torch_adam_matches_pytorch_adam_with_coupled_weight_decay():
    rng = np.random.default_rng(1)
    start = rng.normal(size=(5, 7)).astype("float32")
    grads = [rng.normal(size=(5, 7)).astype("float32") * 10.0 ** -k for k in range(4)]
    variable = keras.Variable(start)
    optimizer = TorchAdam(1e-2, 0.0, 0.99, 1e-8, l2=0.1)
    param = torch.nn.Parameter(torch.from_numpy(start.copy()))
    torch_optimizer = torch.optim.Adam([param], lr=1e-2, betas=(0.0, 0.99), eps=1e-8, weight_decay=0.1)
    for grad in grads:
        optimizer.apply_gradients([(tf.constant(grad), variable)])
        param.grad = torch.from_numpy(grad.copy())
        torch_optimizer.step()
    np.testing.assert_allclose(np.asarray(variable), param.detach().numpy(), rtol=1e-6, atol=1e-7)


def _worker(mode, config_path, initial_checkpoint, output, tf_config=None):
    """`python -m tests.replica_worker ...` from the repository root, in a fresh environment for TensorFlow."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    command = [sys.executable, "-m", "tests.replica_worker", mode, str(config_path), str(initial_checkpoint),
               str(output)]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(processes, timeout=300):
    deadline = time.time() + timeout
    try:
        for process in processes:
            out, _ = process.communicate(timeout=max(1.0, deadline - time.time()))
            assert process.returncode == 0, out[-4000:]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()


# Adam's first steps are about +-lr for every entry whatever the size of its gradient, so an
# entry whose gradient is rounding noise (the generator's biases before instance norms, and
# under load up to 6% of its entries) takes a step whose sign the order of the replicas' sum
# decides. With epsilon 1 and lr 1e-2 the steps are lr * g / (|g| + 1), smooth in g: two runs'
# updates then differ by rounding alone, and a gradient off by any factor shows in them.
REPLICA_TRAINING = dict(epsilon=1.0, lr=1e-2, f_lr=1e-2)
UPDATE_RTOL = 1e-3  # of the network's largest update; plus 4 ulp of the weight, the rounding of w + update
# Losses computed before the first update see identical weights; those after it see weights that differ by rounding.
BEFORE_ANY_UPDATE = ("log/0/D/latent_real", "log/0/D/latent_fake", "log/0/D/latent_reg")
LOG_RTOL = {True: 1e-5, False: 1e-4}


def _assert_same_run(result, reference, initial):
    """Same logs, and the same updates of every weight from `initial`, after two iterations."""
    assert int(result["step"]) == int(reference["step"]) == 2
    for key in (k for k in reference if k.startswith("log/")):
        bound = LOG_RTOL[key in BEFORE_ANY_UPDATE] * abs(reference[key])
        assert abs(result[key] - reference[key]) <= bound, (key, result[key], reference[key])
    updates = {key: reference[key] - initial[key] for key in initial}
    scale = {}
    for key, update in updates.items():
        network = key.split("/")[0]
        scale[network] = max(scale.get(network, 0.0), float(np.abs(update).max()))
    assert all(value > 0 for value in scale.values()), scale
    for key, update in updates.items():
        bound = UPDATE_RTOL * scale[key.split("/")[0]] + 4 * np.spacing(np.abs(initial[key]).astype(np.float32))
        difference = np.abs((result[key] - initial[key]) - update)
        assert (difference <= bound).all(), (key, float(difference.max()), float(np.abs(update).max()))


@pytest.mark.slow
def test_mirrored_and_multi_worker_replicas_match_one_device(config, tmp_path):
    """Global batch 4 on two replicas (two logical CPUs; two worker processes) == one device at batch 4.

    All runs are fresh processes with the same environment (so the same TensorFlow
    kernels: TF_ENABLE_ONEDNN_OPTS is read once, at import), from one checkpoint of the
    trainer's own initial weights. Not the PyTorch reference networks' weights: with those
    (and the styles F makes of them, up to 4.5), G's gradient is so sensitive to rounding
    that one device at batch 4 and the same device on the two halves of the batch (whose
    kernels round differently) differ by 1-3% of F's largest gradient entry, while two
    replicas' summed gradients equal the two halves' exactly (measured by one process with
    two logical CPUs). A replica bug (a gradient or loss counted twice, a wrong split, the
    L2 decay summed across replicas) moves the updates by far more than UPDATE_RTOL.
    """
    config = config.replace(**REPLICA_TRAINING)
    keras.utils.set_random_seed(0)
    model = build_model(config, run_eagerly=True)
    initial_weights = keras_weights(model)
    initial = model.checkpoint().write(str(tmp_path / "initial"))
    config_path = tmp_path / "config.yaml"
    config.save(config_path)
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = [_worker(mode, config_path, initial, tmp_path / f"{mode}.npz") for mode in ("default", "mirrored")] + [
        _worker("multi_worker", config_path, initial, tmp_path / "multi_worker.npz",
                {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}) for i in range(2)]
    _wait(processes)
    results = {}
    for mode in ("default", "mirrored", "multi_worker"):
        with np.load(tmp_path / f"{mode}.npz") as result:
            results[mode] = {key: result[key] for key in result.files}
    _assert_same_run(results["mirrored"], results["default"], initial_weights)
    _assert_same_run(results["multi_worker"], results["default"], initial_weights)


@pytest.mark.parametrize("precision", ["mixed_bfloat16", pytest.param("mixed_float16", marks=pytest.mark.slow)])
def test_one_iteration_is_finite_under_mixed_precision(tiny_config, precision):
    from stargan_keras.core.distribute import set_precision

    set_precision(precision)
    keras.utils.set_random_seed(0)
    model = build_model(tiny_config(batch_size=4, lambda_ds=2.0, ds_iter=10, w_hpf=1.0, num_domains=2),
                        run_eagerly=True, fan=build_fan())
    if precision == "mixed_float16":
        assert all(isinstance(opt, keras.optimizers.LossScaleOptimizer) for opt in model.optimizers.values())
    assert model.nets.generator.compute_dtype == precision.split("_")[1]
    before = np.asarray(model.nets.generator.trainable_variables[0]).copy()
    logs = model.train_step({k: tf.constant(v) for k, v in make_batches(1, num_domains=2)[0].items()})
    assert set(logs) == set(LOG_KEYS)
    assert all(np.isfinite(float(v)) for v in logs.values()), logs
    assert not np.array_equal(np.asarray(model.nets.generator.trainable_variables[0]), before)


@pytest.mark.slow
def test_fit_then_resume_from_checkpoint_continues_identically(config, upstream_checkpoints, tmp_path):
    """fit() drives train_step; a restored checkpoint continues the run (and the lambda_ds decay) exactly."""
    model = _trained_model(config, upstream_checkpoints, run_eagerly=True)
    batches = make_batches(3)
    dataset = tf.data.Dataset.from_tensor_slices({k: np.concatenate([b[k] for b in batches[:2]]) for k in batches[0]})
    seen = []
    callback = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(dict(logs)))
    model.fit(dataset.batch(4).repeat(), epochs=1, steps_per_epoch=2, callbacks=[callback], verbose=0, shuffle=False)
    assert len(seen) == 2 and set(LOG_KEYS) <= set(seen[-1])
    assert int(model.step.numpy()) == 2
    assert seen[-1]["G/lambda_ds"] == pytest.approx(2.0 * (1 - 2 / 10))
    path = model.checkpoint().save(str(tmp_path / "ckpt"))

    restored = _trained_model(config, upstream_checkpoints, run_eagerly=True)
    restored.checkpoint().restore(path).assert_consumed()
    assert int(restored.step.numpy()) == 2
    resumed = restored.distributed_train_step(batches[2])
    continued = model.distributed_train_step(batches[2])
    assert float(resumed["G/lambda_ds"]) == pytest.approx(2.0 * (1 - 3 / 10))
    for key in LOG_KEYS:
        assert float(resumed[key]) == float(continued[key]), key
    for a, b in zip(restored.nets_ema.generator.weights, model.nets_ema.generator.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert float(lambda_ds_at(12, 2.0, 10)) == 0.0
