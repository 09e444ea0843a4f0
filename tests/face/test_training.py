"""Training a w_hpf > 0 model (the CelebA-HQ setting) through the command: the FAN is required, travels with the run,
and the run resumes exactly; a model directory converted with it translates with the masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tests.harness.components import require

torch = require("torch")

import stargan_keras  # noqa: E402
from stargan_keras import train  # noqa: E402
from stargan_keras.face.model_files import FAN_FILE  # noqa: E402
from stargan_keras.face.masks import face_masks  # noqa: E402
from tests.references import torch_fan  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TINY = ["--img-size", "32", "--w-hpf", "1", "--base-dim", "4", "--max-conv-dim", "16", "--mapping-hidden-dim", "16",
        "--batch-size", "2", "--save-every", "1", "--sample-every", "2", "--log-every", "1",
        "--shapes-train-per-domain", "8", "--shapes-val-per-domain", "2"]


@pytest.fixture(scope="module")
def wing(tmp_path_factory):
    fan = torch_fan.randomize(torch_fan.TorchFAN(), seed=5)
    return torch_fan.save_wing_checkpoint(fan, tmp_path_factory.mktemp("fan") / "wing.ckpt")


def test_without_fan_weights_training_stops_before_any_work(tmp_path, capsys):
    run = tmp_path / "run"
    assert train.main([*TINY, "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert "--fan-checkpoint" in err and "wing.ckpt" in err and "--w-hpf 0" in err
    assert len(err.strip().splitlines()) == 1
    assert not run.exists()
    assert train.main([*TINY, "--run-dir", str(run), "--fan-checkpoint", str(tmp_path / "nope.ckpt")]) == 2
    assert "--fan-checkpoint" in capsys.readouterr().err and not run.exists()


def _checkpoint(run, step):
    return tf.train.load_checkpoint(str(run / "checkpoints" / f"ckpt-{step}"))


def _train(python, args, cwd):
    """The command in a process of its own (forked by `python`, the warm interpreter): Keras' global seed generator
    makes a second run in one process differ."""
    return python.popen(["-m", "stargan_keras.train", *TINY, *args], cwd=cwd)


def _finish(process):
    out, err = process.communicate(timeout=900)
    assert process.returncode == 0, err[-3000:]
    assert "WARNING" not in err, err[-3000:]  # TensorFlow warned of retracing when a face run drew its samples
    return out


@pytest.mark.slow
def test_a_face_run_trains_resumes_exactly_and_translates_with_masks(tmp_path, wing, warm_python):
    whole, halves = tmp_path / "whole", tmp_path / "halves"
    fan = ["--fan-checkpoint", str(wing)]
    uninterrupted = _train(warm_python, ["--run-dir", str(whole), "--total-iters", "2", *fan], tmp_path)
    # The halves draw no sample grids (the FAN's 256 px passes over the sample sources cost more than a step).
    no_samples = ["--sample-every", "0"]
    first = _finish(_train(warm_python, ["--run-dir", str(halves), "--total-iters", "1", *no_samples, *fan], tmp_path))
    assert "samples        none" in first
    # The run holds its FAN: resuming needs no --fan-checkpoint.
    resumed = _finish(_train(warm_python, ["--run-dir", str(halves), "--total-iters", "2", *no_samples], tmp_path))
    assert "resuming from step 1" in resumed and not list((halves / "samples").glob("*.jpg"))
    _finish(uninterrupted)
    a, b = _checkpoint(whole, 2), _checkpoint(halves, 2)
    names = [n for n in a.get_variable_to_shape_map() if n.startswith(("networks/", "ema_networks/", "optimizers/"))]
    differing = [n for n in names if not np.array_equal(a.get_tensor(n), b.get_tensor(n))]
    assert names and not differing, differing[:5]
    assert (whole / FAN_FILE).is_file() and sorted((whole / "samples").glob("*.jpg"))

    model = stargan_keras.load(whole)
    assert model.networks.fan is not None
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    s = model.style_from_latent(rng.standard_normal((2, 16)).astype("float32"), [0, 1])
    masks = face_masks(model.networks.fan, x)
    assert 0.02 < float(tf.reduce_mean(tf.cast(masks[0] > 0, tf.float32))) < 0.98, "degenerate masks"
    # the compiled translator against the eager G with the masks; measured 1.0e-5 (2 steps)
    np.testing.assert_allclose(model.synthesize(x, s), model.generator(x, s, masks), atol=1e-4)
    assert np.abs(np.asarray(model.synthesize(x, s)) - np.asarray(model.generator(x, s))).max() > 1e-3
