"""The checks every registered model family passes, run the same way for each (`tests.harness.families`): the
authors' checkpoint converted to the reference networks' outputs, training iterations against the PyTorch
reference, the export and its TFLite file translating alike, mixed precision, and two replicas (mirrored,
multi-worker) taking one device's updates."""

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

import stargan_keras
from stargan_keras import convert, families
from tests.harness.checks import assert_converted
from tests.harness.families import CASES, keras_weights
from tests.harness.networks import free_ports

REPO = Path(__file__).resolve().parents[1]


def test_every_registered_family_has_a_case():
    assert sorted(CASES) == sorted(families.names())


def _converted(case, directory):
    """The reference networks, and the model directory `python -m stargan_keras.convert` writes from their files."""
    config = case.tiny_config()
    nets, checkpoint, discriminator = case.authors_files(config, directory / "authors", seed=1)
    config_file = directory / "config.yaml"
    config.save(config_file)
    assert convert.main(["--pytorch-checkpoint", str(checkpoint), "--discriminator-checkpoint", str(discriminator),
                         "--config", str(config_file), "--output", str(directory / "model")]) == 0
    return nets, directory / "model"


@pytest.mark.parametrize("family", sorted(CASES))
def test_the_authors_checkpoint_converts_to_the_reference_networks(family, tmp_path):
    pytest.importorskip("torch")
    case = CASES[family]
    nets, model_dir = _converted(case, tmp_path)
    model = stargan_keras.load(model_dir)
    assert model.config.FAMILY == family
    for what, ours, theirs in case.reference_outputs(nets, model, np.random.default_rng(0)):
        assert_converted(ours, theirs, f"{family} {what}")


PARITY_SEED = 2


def _parity_runs():
    return [pytest.param(family, run, id=f"{family}-{run.name}", marks=[pytest.mark.slow] if run.slow else [])
            for family in sorted(CASES) for run in CASES[family].parity_runs]


@pytest.mark.parametrize("family, run", _parity_runs())
def test_training_iterations_match_the_pytorch_reference(family, run, tmp_path):
    """From the reference networks' weights, with every loss weight and optimisation setting distinct (the case's
    `training`, given to the reference too): every loss term of every iteration, and every weight's update since
    the start (the EMA copies' included), as the float64 PyTorch reference computes them."""
    pytest.importorskip("torch")
    case = CASES[family]
    config = case.tiny_config(**case.training, **run.overrides)
    _, checkpoint, discriminator = case.authors_files(config, tmp_path, seed=PARITY_SEED)
    batches = case.make_batches(config, run.iterations)
    expected, theirs = case.reference_iterations(config, batches, PARITY_SEED, run.overrides)
    model = case.build_trainer(config, run_eagerly=run.eager)
    case.load_authors_weights(model, checkpoint, discriminator)
    ours = [keras_weights(model)]
    assert sorted(ours[0]) == sorted(theirs[0])
    for key, value in ours[0].items():
        np.testing.assert_array_equal(value, theirs[0][key].astype(np.float32), err_msg=key)
    for i, batch in enumerate(batches):
        logs = {key: float(value) for key, value in model.distributed_train_step(batch).items()}
        ours.append(keras_weights(model))
        assert list(logs) == [key for key in case.log_keys if key in expected[i]] and set(logs) == set(expected[i])
        for key, want in expected[i].items():
            error = abs(logs[key] - want) / max(abs(want), 1e-12)
            print(f"{family} {run.name} iteration {i} {key}: relative error {error:.2e}")
            before_update = i == 0 and key in case.before_any_update  # the same weights; later ones differ by rounding
            assert error <= case.parity_rtol["before_update" if before_update else "after_update"], (i, key, error)
        for network, error in _update_errors(ours, theirs, i + 1).items():
            print(f"{family} {run.name} iteration {i} {network}: update error {error:.2e} of its largest")
            assert error <= case.parity_rtol["update"], (i, network, error)
    assert int(model.step.numpy()) == run.iterations


def _update_errors(ours, theirs, i) -> dict:
    """{network: the largest difference of our updates from the start to iteration i and the reference's, beyond
    4 ulp of the float32 weight (the rounding of w + update), over the reference's largest update}; a network the
    reference left unchanged must be left exactly unchanged."""
    errors = {}
    for network in sorted({key.split("/")[0] for key in theirs[0]}):
        keys = [key for key in theirs[0] if key.split("/")[0] == network]
        mine = np.concatenate([(ours[i][k].astype(np.float64) - ours[0][k]).ravel() for k in keys])
        want = np.concatenate([(theirs[i][k] - theirs[0][k]).ravel() for k in keys])
        rounding = np.concatenate([4 * np.spacing(np.abs(ours[0][k]).astype(np.float32)).ravel() for k in keys])
        scale = float(np.abs(want).max())
        if scale == 0:
            assert not mine.any(), f"{network} changed where the reference left it"
            continue
        errors[network] = float(np.maximum(np.abs(mine - want) - rounding, 0).max()) / scale
    return errors


TFLITE_PSNR_DB = 40.0  # float32 TFLite file against the SavedModel, uint8 images


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(CASES))
def test_the_export_and_its_tflite_file_translate_alike(family, tmp_path):
    """export writes the family table's signatures; its TFLite file answers each of them as the SavedModel."""
    pytest.importorskip("torch")
    from stargan_keras import export
    from stargan_keras.serving import tflite

    _, model_dir = _converted(CASES[family], tmp_path)
    assert export.main(["--checkpoint", str(model_dir), "--output", str(tmp_path / "export"), "--version", "1",
                        "--mean-style-samples", "50"]) == 0
    saved = tmp_path / "export" / "1"
    table = families.get(family).signatures
    assert set(table.names) <= set(tf_signatures(saved))
    results = tflite.verify(tflite.convert(saved, tmp_path / "model.tflite"), saved, runs=1)
    assert sorted(r["signature"] for r in results) == sorted(table.tflite_names)
    assert all(r["psnr_db"] >= TFLITE_PSNR_DB for r in results), results


def tf_signatures(saved_model_dir) -> list[str]:
    import tensorflow as tf

    return list(tf.saved_model.load(str(saved_model_dir)).signatures)


@pytest.mark.parametrize("family", sorted(CASES))
@pytest.mark.parametrize("precision", ["mixed_bfloat16", pytest.param("mixed_float16", marks=pytest.mark.slow)])
def test_one_iteration_is_finite_under_mixed_precision(family, precision):
    """A D and G update in reduced precision (float16 with loss scaling) changes G and stays finite."""
    from stargan_keras.core.distribute import set_precision

    case = CASES[family]
    set_precision(precision)
    keras.utils.set_random_seed(0)
    config = case.tiny_config(**case.mixed_precision)
    model = case.build_trainer(config, run_eagerly=True)
    if precision == "mixed_float16":
        assert all(isinstance(opt, keras.optimizers.LossScaleOptimizer) for opt in model.optimizers.values())
    assert model.nets.generator.compute_dtype == precision.split("_")[1]
    before = np.asarray(model.nets.generator.trainable_variables[0]).copy()
    logs = model.distributed_train_step(case.make_batches(config, 1)[0])
    assert set(logs) == set(case.log_keys)
    assert all(np.isfinite(float(v)) for v in logs.values()), logs
    assert not np.array_equal(np.asarray(model.nets.generator.trainable_variables[0]), before)


def _worker(family, mode, config_path, initial_checkpoint, output, tf_config=None):
    """`python -m tests.harness.replica_worker ...` from the repository root, in a fresh environment for TensorFlow."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    command = [sys.executable, "-m", "tests.harness.replica_worker", family, mode, str(config_path),
               str(initial_checkpoint), str(output)]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(processes, timeout=600):
    deadline = time.time() + timeout
    try:
        for process in processes:
            out, _ = process.communicate(timeout=max(1.0, deadline - time.time()))
            assert process.returncode == 0, out[-4000:]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()


UPDATE_RTOL = 1e-3  # of the network's largest update; plus 4 ulp of the weight, the rounding of w + update
# Losses computed before the first update see identical weights; those after it see weights that differ by rounding.
LOG_RTOL = {True: 1e-5, False: 1e-4}


def assert_same_run(result, reference, initial, before_any_update):
    """Same logs, and the same updates of every weight from `initial`, after two iterations."""
    assert int(result["step"]) == int(reference["step"]) == 2
    for key in (k for k in reference if k.startswith("log/")):
        bound = LOG_RTOL[key.split("/", 2)[2] in before_any_update and key.startswith("log/0/")] * abs(reference[key])
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
@pytest.mark.parametrize("family", sorted(CASES))
def test_mirrored_and_multi_worker_replicas_match_one_device(family, tmp_path):
    """Global batch 4 on two replicas (two logical CPUs; two worker processes) == one device at batch 4.

    All runs are fresh processes with the same environment (so the same TensorFlow kernels:
    TF_ENABLE_ONEDNN_OPTS is read once, at import), from one checkpoint of the trainer's own initial
    weights, with Adam steps smooth in the gradient (the case's `smooth_adam`). A replica bug (a gradient or
    loss counted twice, a per-replica mean in place of the global batch's, a wrong split, the L2 decay summed
    across replicas) moves the updates by far more than UPDATE_RTOL.
    """
    case = CASES[family]
    config = case.tiny_config(**case.smooth_adam)
    keras.utils.set_random_seed(0)
    model = case.build_trainer(config, run_eagerly=True)
    initial_weights = keras_weights(model)
    initial = model.checkpoint().write(str(tmp_path / "initial"))
    config_path = tmp_path / "config.yaml"
    config.save(config_path)
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = [_worker(family, mode, config_path, initial, tmp_path / f"{mode}.npz")
                 for mode in ("default", "mirrored")] + [
        _worker(family, "multi_worker", config_path, initial, tmp_path / "multi_worker.npz",
                {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}) for i in range(2)]
    _wait(processes)
    results = {}
    for mode in ("default", "mirrored", "multi_worker"):
        with np.load(tmp_path / f"{mode}.npz") as result:
            results[mode] = {key: result[key] for key in result.files}
    assert_same_run(results["mirrored"], results["default"], initial_weights, case.before_any_update)
    assert_same_run(results["multi_worker"], results["default"], initial_weights, case.before_any_update)
