"""The checks every registered model family passes, run the same way for each (`tests.harness.families`): the
authors' checkpoint converted to the reference networks' outputs, training iterations against the PyTorch
reference, the export and its TFLite file translating alike, mixed precision, two replicas (mirrored,
multi-worker) computing one device's sum of its gradients on the two half-batches, and the convolution forms of
each device kind training alike."""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import numpy as np
import pytest

import stargan_keras
from stargan_keras import convert, families
from tests.harness.checks import assert_converted
from tests.harness.families import CASES, keras_weights, two_iterations
from tests.harness.replicas import load_reference_weights
from tests.harness.networks import free_ports
from tests.harness.components import require

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


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """family -> `_converted` of its case, made once for the conversion check and the export (both only read it)."""
    made = {}

    def get(family):
        if family not in made:
            made[family] = _converted(CASES[family], tmp_path_factory.mktemp(f"converted-{family}"))
        return made[family]

    return get


@pytest.mark.parametrize("family", sorted(CASES))
def test_the_authors_checkpoint_converts_to_the_reference_networks(family, converted):
    require("torch")
    case = CASES[family]
    nets, model_dir = converted(family)
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
    require("torch")
    case = CASES[family]
    config = case.tiny_config(**case.training, **run.overrides)
    batches = case.make_batches(config, run.iterations)
    expected, theirs = case.reference_iterations(config, batches, PARITY_SEED, run.overrides)
    model = case.build_trainer(config, run_eagerly=run.eager)
    load_reference_weights(case, model, config, tmp_path, seed=PARITY_SEED)
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


TFLITE_PSNR_DB = 62.0  # float32 TFLite file against the SavedModel; as tests/serving/test_tflite.py's float32 floor


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(CASES))
def test_the_export_and_its_tflite_file_translate_alike(family, converted, tmp_path):
    """export writes the family table's signatures; its TFLite file answers each of them as the SavedModel."""
    require("torch")
    from stargan_keras import export
    from stargan_keras.serving import tflite

    _, model_dir = converted(family)
    assert export.main(["--checkpoint", str(model_dir), "--output", str(tmp_path / "export"), "--version", "1",
                        "--mean-style-samples", "50"]) == 0
    saved = tmp_path / "export" / "1"
    table = families.get(family).signatures
    assert set(table.names) <= set(tf_signatures(saved))
    results = tflite.verify(tflite.convert(saved, tmp_path / "model.tflite"), saved, runs=1)
    assert sorted(r["signature"] for r in results) == sorted(table.tflite_names)
    print(f"{family} TFLite: " + ", ".join(f"{r['signature']} {r['psnr_db']:.1f} dB" for r in results))
    assert all(r["psnr_db"] >= TFLITE_PSNR_DB for r in results), results


def tf_signatures(saved_model_dir) -> list[str]:
    import tensorflow as tf

    return list(tf.saved_model.load(str(saved_model_dir)).signatures)


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(CASES))
@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
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


def _worker(python, family, modes, config_path, initial_checkpoint, output, tf_config=None):
    """`python -m tests.harness.replica_worker ...` from the repository root, forked by `python` (the warm
    interpreter) before TensorFlow initialises its devices."""
    env = {**python.env, "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return python.popen(["-m", "tests.harness.replica_worker", family, modes, str(config_path),
                         str(initial_checkpoint), str(output)], cwd=REPO, env=env)


def _wait(processes, timeout=600):
    deadline = time.time() + timeout
    try:
        outputs = ["".join(process.communicate(timeout=max(1.0, deadline - time.time()))) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    failed = [f"worker {i}: {out[-4000:]}" for i, (p, out) in enumerate(zip(processes, outputs)) if p.returncode]
    assert not failed, "\n".join(failed)


def _norm(arrays) -> float:
    return float(np.sqrt(sum(np.sum(np.square(a, dtype=np.float64)) for a in arrays)))


def differences(result, reference, initial, before_any_update) -> dict:
    """How far two runs of two iterations from the weights `initial` are apart: the logs (relative; those computed
    before any update apart), and the updates of every network, per entry (of the network's largest update,
    beyond 4 ulp of the weight: the rounding of w + update) and as a whole (of the update's norm)."""
    assert int(result["step"]) == int(reference["step"]) == 2
    found = {"logs before any update": 0.0, "logs": 0.0, "updates": 0.0, "update norms": 0.0}
    for key in (k for k in reference if k.startswith("log/")):
        kind = "logs before any update" if key.startswith("log/0/") and key.split("/", 2)[2] in before_any_update else "logs"
        difference = float(abs(result[key] - reference[key]))
        found[kind] = max(found[kind], difference / abs(float(reference[key])) if reference[key] else difference)
    for network in {key.split("/")[0] for key in initial}:
        keys = [key for key in initial if key.split("/")[0] == network]
        ours = {key: result[key] - initial[key] for key in keys}
        theirs = {key: reference[key] - initial[key] for key in keys}
        scale = max(float(np.abs(update).max()) for update in theirs.values())
        assert scale > 0, f"{network} did not change"
        for key in keys:
            beyond_rounding = np.abs(ours[key] - theirs[key]) - 4 * np.spacing(np.abs(initial[key]).astype(np.float32))
            found["updates"] = max(found["updates"], float(beyond_rounding.max()) / scale)
        found["update norms"] = max(found["update norms"],
                                    _norm(ours[k] - theirs[k] for k in keys) / _norm(theirs.values()))
    return found


# Two replicas against one device summing its gradients on the two half-batches: the same arithmetic, so equal
# to rounding. Measured at the reference weights: 0 for every figure, both families (the same bits).
REPLICAS_RTOL = {"logs before any update": 1e-5, "logs": 1e-5, "updates": 1e-5, "update norms": 1e-5}
# Two replicas against one device on the whole batch, whose kernels sum over the batch in another order: rounding,
# which the reference weights carry far in v2 (cancelling gradient terms). A gradient or loss off by a factor 2
# moves the update norms by ~100%. Measured: v2 logs before any update 8.0e-8, logs 4.7e-4, updates 1.1e-1 (of
# F's largest), update norms 7.3e-2 (F); v1 1.2e-7, 5.5e-7, 1.8e-6, 2.8e-6 (G).
# The two convolution forms on one device from the trainer's own weights: the same sums in another order.
# Measured: v2 logs before any update 1.2e-7, logs 6.6e-7, updates 2.5e-5, update norms 1.2e-4; v1 0, 4.3e-7,
# 5.9e-7, 1.7e-6.
CONV_FORMS_RTOL = {"logs before any update": 1e-6, "logs": 7e-6, "updates": 3e-4, "update norms": 1.5e-3}
ONE_DEVICE_RTOL = {
    "v2": {"logs before any update": 1e-6, "logs": 5e-3, "updates": 1.0, "update norms": 0.3},
    "v1": {"logs before any update": 1e-6, "logs": 5e-6, "updates": 2e-5, "update norms": 3e-5},
}


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(CASES))
def test_mirrored_and_multi_worker_replicas_sum_the_half_batches_gradients(family, tmp_path, warm_python):
    """Global batch 4 on two replicas (two logical CPUs; two worker processes) == one device summing its
    gradients on the two half-batches (`tests.harness.replicas`); one device at batch 4 within a bound.

    All runs are in processes of their own, forked from the warm interpreter (tests/harness/zygote.py) before
    TensorFlow initialises, with the same environment (so the same kernels: TF_ENABLE_ONEDNN_OPTS is read once):
    the one-device runs and the mirrored one in one process, each multi-worker replica in its own
    (`tests.harness.replica_worker`); from one checkpoint of the PyTorch reference's initial weights, with Adam steps
    smooth in the gradient (the case's `smooth_adam`). A replica bug (a gradient or loss counted twice, a per-replica
    mean in place of the global batch's, a wrong split, the L2 decay summed across replicas) moves the updates by far
    more than either bound.
    """
    require("torch")
    case = CASES[family]
    config = case.tiny_config(**case.smooth_adam)
    model = case.build_trainer(config, run_eagerly=True)
    load_reference_weights(case, model, config, tmp_path / "authors")
    initial_weights = keras_weights(model)
    initial = model.checkpoint().write(str(tmp_path / "initial"))
    config_path = tmp_path / "config.yaml"
    config.save(config_path)
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    _wait([_worker(warm_python, family, "default,half_batches,mirrored", config_path, initial, tmp_path)] + [
        _worker(warm_python, family, "multi_worker", config_path, initial, tmp_path,
                {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}) for i in range(2)])
    results = {}
    for mode in ("default", "half_batches", "mirrored", "multi_worker"):
        with np.load(tmp_path / f"{mode}.npz") as result:
            results[mode] = {key: result[key] for key in result.files}
    for replicas in ("mirrored", "multi_worker"):
        for reference, bounds in (("half_batches", REPLICAS_RTOL), ("default", ONE_DEVICE_RTOL[family])):
            found = differences(results[replicas], results[reference], initial_weights, case.before_any_update)
            print(f"{family} {replicas} vs {reference}: " + ", ".join(f"{k} {v:.1e}" for k, v in found.items()))
            assert all(found[key] <= bound for key, bound in bounds.items()), (replicas, reference, found, bounds)


def _convolution_forms(graph) -> dict[str, int]:
    """Counts of the ops that tell the convolutions' forms apart in a traced step: convolutions as matrix
    products (a MatMul by a kernel reshaped from 4-D), stride-2 convolutions (v2's folded resampling; v1's own
    4x4 ones), kernel gradients as forward convolutions (`same_convolution`'s, of the transposed input), and
    TensorFlow's kernel-gradient ops of stride-1 convolutions of 3x3 or more."""
    counts = dict.fromkeys(("matmul", "stride_2", "gradient_as_forward", "gradient_kernel"), 0)
    for op in graph.get_operations():
        if op.type == "MatMul" and op.inputs[1].op.type == "Reshape" and op.inputs[1].op.inputs[0].shape.rank == 4:
            counts["matmul"] += 1
        if op.type in ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter") and op.get_attr("strides")[1] == 2:
            counts["stride_2"] += 1
        if op.type == "Conv2D" and op.inputs[0].op.type == "Transpose":
            counts["gradient_as_forward"] += 1
        if (op.type == "Conv2DBackpropFilter" and op.get_attr("strides")[1] == 1
                and op.outputs[0].shape[0] is not None and op.outputs[0].shape[0] >= 3):
            counts["gradient_kernel"] += 1
    return counts


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(CASES))
def test_both_conv_forms_trace_their_own_ops_and_train_alike(family, tmp_path):
    """--conv-forms cpu and keras: the same variables (one's checkpoint restores the other), the same logs and
    updates over two compiled iterations within the replica check's tolerances, and each its own ops: the
    keras side has no convolution as a matrix product, no folded 4x4 kernel, no gradient as a forward
    convolution, and TensorFlow's own kernel gradients."""
    case = CASES[family]
    config = case.tiny_config(**case.smooth_adam, **case.small_map_widths)
    keras.utils.set_random_seed(0)
    results, forms = {}, {}
    for conv_forms in ("cpu", "keras"):
        model = case.build_trainer(config.replace(conv_forms=conv_forms))
        assert model.conv_forms == conv_forms
        if conv_forms == "cpu":
            initial_weights = keras_weights(model)
            initial = model.checkpoint().write(str(tmp_path / "initial"))
        else:
            model.checkpoint().read(initial).assert_consumed()
        results[conv_forms] = two_iterations(case, model, config)
        batch = case.make_batches(config, 1)[0]
        counts = [_convolution_forms(function.get_concrete_function(batch).graph)
                  for function in model._step_functions.values()]
        forms[conv_forms] = {key: sum(c[key] for c in counts) for key in counts[0]}
    cpu, keras_forms = forms["cpu"], forms["keras"]
    assert cpu["matmul"] > 0 and cpu["gradient_as_forward"] > 0, cpu
    assert keras_forms["matmul"] == keras_forms["gradient_as_forward"] == 0, keras_forms
    assert keras_forms["gradient_kernel"] > cpu["gradient_kernel"], forms
    if family == "v2":  # v2 has no strided convolution of its own: stride 2 is the folded resampling
        assert cpu["stride_2"] > 0 == keras_forms["stride_2"], forms
    else:  # v1's own 4x4 stride-2 convolutions, except those on small maps in CPU forms
        assert keras_forms["stride_2"] > cpu["stride_2"] > 0, forms
    found = differences(results["keras"], results["cpu"], initial_weights, case.before_any_update)
    print(f"{family} keras vs cpu forms: " + ", ".join(f"{k} {v:.1e}" for k, v in found.items()))
    assert all(found[key] <= bound for key, bound in CONV_FORMS_RTOL.items()), found
