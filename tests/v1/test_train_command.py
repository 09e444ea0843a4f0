"""`python -m stargan_keras.train --model v1`: presets, flags, and tiny shapes runs (a run, and the same run stopped
half-way and resumed by the command, which must end with the same weights)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import yaml

from stargan_keras import train
from tests.harness.commands import REPO, TIMEOUT
from tests.harness.v1 import TINY_V1_TRAIN

TINY = [*TINY_V1_TRAIN, "--save-every", "3", "--sample-every", "3", "--log-every", "1"]


def _start(python, args):
    """The command in a process of its own, forked by `python` (the warm interpreter)."""
    return python.popen(["-m", "stargan_keras.train", *args], cwd=REPO)


def _finish(process) -> str:
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, err[-3000:]
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory, warm_python):
    """Run `a`: 6 steps at once by the command; run `b`: 3 steps (`train.main` in this process: its first half
    is not what is checked), then the command resumes it to 6 (`a` beside `b`)."""
    root = tmp_path_factory.mktemp("v1runs")
    a, b = root / "a", root / "b"
    first = _start(warm_python, [*TINY, "--total-iters", "6", "--run-dir", str(a)])
    assert train.main([*TINY, "--total-iters", "3", "--run-dir", str(b)]) == 0
    out = {"b2": _finish(_start(warm_python, [*TINY, "--total-iters", "6", "--run-dir", str(b)]))}
    out["a"] = _finish(first)
    return {"a_dir": a, "b_dir": b, **out}


@pytest.mark.slow
def test_a_run_writes_checkpoints_samples_logs_and_its_config(runs):
    run = runs["a_dir"]
    assert sorted(p.name for p in (run / "checkpoints").glob("ckpt-*.index")) == ["ckpt-3.index", "ckpt-6.index"]
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "000003_interpolation.jpg", "000003_translations.jpg", "000006_interpolation.jpg", "000006_translations.jpg"]
    assert any((run / "logs").iterdir())
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model_family"] == "v1" and "img_size" not in saved["model"] and "lr" not in saved["train"]
    assert saved["model"]["selected_attrs"] == ["circle", "square", "triangle", "red", "large"]
    assert "shapes: 5 attributes" in runs["a"] and "16 px" in runs["a"]


@pytest.mark.slow
def test_resuming_gives_the_weights_of_an_uninterrupted_run(runs):
    assert "resuming from step 3" in runs["b2"]
    uninterrupted = tf.train.load_checkpoint(str(runs["a_dir"] / "checkpoints" / "ckpt-6"))
    resumed = tf.train.load_checkpoint(str(runs["b_dir"] / "checkpoints" / "ckpt-6"))
    names = uninterrupted.get_variable_to_shape_map()
    assert names == resumed.get_variable_to_shape_map()
    tracked = [n for n in names if n.startswith(("networks/", "optimizers/"))]
    assert any(n.startswith("networks/generator/") for n in tracked) and any("optimizers/" in n for n in tracked)
    differing = [n for n in tracked if not np.array_equal(uninterrupted.get_tensor(n), resumed.get_tensor(n))]
    assert not differing, differing[:10]


def test_presets_follow_the_model_and_the_dataset():
    config, _ = train.config_from_args(["--model", "v1"])
    assert (config.model_family, config.data.dataset, config.run_dir) == ("v1", "shapes", "runs/v1_shapes")
    config, _ = train.config_from_args(["--model-family", "v1", "--dataset", "celeba"])
    assert (config.model.image_size, config.model.c_dim, config.train.batch_size, config.run_dir) == (
        128, 5, 16, "runs/v1_celeba")
    config, _ = train.config_from_args(["--config", "v1_both"])
    assert (config.model_family, config.model.label_dim, config.model.num_classes) == ("v1", 15, 13)
    config, _ = train.config_from_args(["--model", "v1", "--dataset", "/data/my_faces"])
    assert (config.model.label_type, config.run_dir) == ("categorical", "runs/v1_my_faces")
    config, _ = train.config_from_args(["--config", "v1_rafd", "--model", "v1"])
    assert config.model.c_dim == 8
    assert train.config_from_args([])[0].model_family == "v2"


def test_bad_flags_exit_2_with_one_line(tmp_path, capsys):
    run = tmp_path / "r"
    assert train.main(["--model", "v3", "--run-dir", str(run)]) == 2
    assert "--model-family 'v3'" in capsys.readouterr().err
    assert train.main(["--config", "v1_shapes", "--model", "v2", "--run-dir", str(run)]) == 2
    assert "--model v2 does not match --config v1_shapes" in capsys.readouterr().err
    assert train.main(["--model", "v1", "--dataset", str(tmp_path / "missing"), "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "missing") in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert train.main(["--model", "v1", "--image-size", "40", "--run-dir", str(run)]) == 2
    assert "--image-size 40" in capsys.readouterr().err
    assert not run.exists()
