"""`python -m stargan_keras.train` end to end, in processes of its own (forked from the warm interpreter,
tests/harness/zygote.py, but for the shared run), on tiny shapes runs.

One lifecycle is shared by several tests: an uninterrupted 6-step run (the session's shared `tiny_v2_run`, which
tests/test_console.py reads too), and a run of the same command stopped by SIGTERM, resumed, killed by SIGKILL
between checkpoints, and resumed to the end. Signals are sent by the training process to itself from a patched
callback (see DRIVER), so they land after a known step without races. The mixed_bfloat16 run, whose checks are
about what training computes rather than about the process, calls `train.main` in-process.
"""

import json
import shutil
import textwrap

import numpy as np
import pytest
import tensorflow as tf
import yaml
from PIL import Image

import stargan_keras
from stargan_keras import train
from stargan_keras.core.layers import torch_named_variables
from stargan_keras.v1.trainer import LOG_KEYS as V1_LOG_KEYS
from stargan_keras.v2.trainer import LOG_KEYS
from tests.harness.networks import free_ports
from tests.harness.commands import TIMEOUT
from tests.harness.runs import TINY_V2_TRAIN as TINY
from tests.harness.v1 import TINY_V1_TRAIN

# Runs the train command with one hook: after step N, send a signal to itself, or
# feed StarGAN v1 NaN images from step N on (a non-finite loss without touching the trainer).
DRIVER = textwrap.dedent("""
    import os, signal, sys
    from stargan_keras import train  # first, as the command does: it quiets TensorFlow's C++ logs
    import tensorflow as tf
    from stargan_keras.core import callbacks
    from stargan_keras.v1 import data

    action, at_step, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    if action == "nan":
        original_dataset = data.make_train_dataset

        def poisoned(config, images, start_step=0):
            def poison(i, batch):
                bad = start_step + i + 1 >= at_step
                return {**batch, "x_real": tf.where(bad, float("nan"), batch["x_real"])}
            return original_dataset(config, images, start_step).enumerate().map(poison)

        data.make_train_dataset = poisoned
    else:
        original_end = callbacks.PeriodicCheckpoint.on_train_batch_end

        def on_train_batch_end(self, batch, logs=None):
            original_end(self, batch, logs)
            if callbacks.current_step(self.model) == at_step:
                os.kill(os.getpid(), getattr(signal, action))

        callbacks.PeriodicCheckpoint.on_train_batch_end = on_train_batch_end
    sys.exit(train.main(argv))
""")


def _start(python, args, cwd, driver=None):
    """The train command (or DRIVER) forked by `python`, the warm interpreter, in the environment of the shared run
    (a user's), so that all use the same kernels."""
    command = [str(cwd / "driver.py"), *driver] if driver else ["-m", "stargan_keras.train"]
    return python.popen([*command, *args], cwd=cwd)


def _finish(process):
    out, err = process.communicate(timeout=TIMEOUT)
    return {"rc": process.returncode, "out": out, "err": err}


def _steps(run_dir):
    return sorted(int(p.stem.split("-")[1]) for p in (run_dir / "checkpoints").glob("ckpt-*.index"))


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory, tiny_v2_run, warm_python):
    """Uninterrupted run `a` (the shared run); run `b`: SIGTERM after step 1, resume, SIGKILL after step 4,
    resume; run `nan`: a StarGAN v1 run (a third of v2's cost) whose images turn NaN at step 3, as stopping on a
    non-finite loss term is the family-agnostic session's (v2's terms reach it as v1's do, through the logs)."""
    root = tmp_path_factory.mktemp("runs")
    (root / "driver.py").write_text(DRIVER)
    b, nan = root / "b", root / "nan"
    background = {"nan": _start(warm_python, [*TINY_V1_TRAIN, "--total-iters", "6", "--save-every", "1",
                                              "--sample-every", "3", "--run-dir", str(nan)], root, driver=["nan", "3"])}
    results = {"sigterm": _finish(_start(warm_python, [*TINY, "--run-dir", str(b)], root,
                                         driver=["SIGTERM", "1"]))}
    results["sigterm"]["steps"] = _steps(b)
    results["sigkill"] = _finish(_start(warm_python, [*TINY, "--run-dir", str(b)], root, driver=["SIGKILL", "4"]))
    results["sigkill"]["steps"] = _steps(b)
    results["resume"] = _finish(_start(warm_python, [*TINY, "--run-dir", str(b)], root))
    results.update({name: _finish(process) for name, process in background.items()})
    results["nan"]["steps"] = _steps(nan)
    results["a"] = {"rc": 0, "out": tiny_v2_run.out, "err": tiny_v2_run.err}  # the shared run finished (rc 0)
    return {"a_dir": tiny_v2_run.run_dir, "b_dir": b, **results}


def _assert_ok(result):
    assert result["rc"] == 0, result["err"][-3000:]


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_cleanly(lifecycle):
    result = lifecycle["sigterm"]
    assert result["rc"] in (0, 130), result["err"][-3000:]
    assert "Traceback" not in result["err"]
    assert "SIGTERM" in result["err"] and "Resume with: python -m stargan_keras.train" in result["err"]
    notices = [line for line in result["err"].splitlines() if "Resume with:" not in line]  # not the command to copy
    assert max(map(len, notices)) <= 100, result["err"]  # fits a terminal
    # Stopped after the step in flight (step 1) and saved it, although 1 is not a multiple of --save-every 3.
    assert result["steps"] == [1]


@pytest.mark.slow
def test_exact_resume_after_sigkill(lifecycle):
    assert lifecycle["sigkill"]["rc"] == -9
    assert lifecycle["sigkill"]["steps"] == [1, 3]  # killed after step 4, before its checkpoint
    resume = lifecycle["resume"]
    _assert_ok(resume)
    assert "resuming from step 3" in resume["out"]
    _assert_ok(lifecycle["a"])
    uninterrupted = tf.train.load_checkpoint(str(lifecycle["a_dir"] / "checkpoints" / "ckpt-6"))
    resumed = tf.train.load_checkpoint(str(lifecycle["b_dir"] / "checkpoints" / "ckpt-6"))
    names = uninterrupted.get_variable_to_shape_map()
    assert names == resumed.get_variable_to_shape_map()
    tracked = [n for n in names if n.startswith(("networks/", "ema_networks/", "optimizers/"))]
    assert any(n.startswith("optimizers/") for n in tracked) and any(n.startswith("ema_networks/") for n in tracked)
    differing = [n for n in tracked if not np.array_equal(uninterrupted.get_tensor(n), resumed.get_tensor(n))]
    assert not differing, differing[:10]


@pytest.mark.slow
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(lifecycle):
    result = lifecycle["nan"]
    assert result["rc"] == 3, result["err"][-3000:]  # EXIT_NON_FINITE
    assert "Traceback" not in result["err"]
    message = result["err"].split("error:", 1)[1]
    assert "step 3:" in message and any(f"loss term {key} " in message for key in V1_LOG_KEYS)
    assert result["steps"] == [1, 2]  # the non-finite step 3 was never saved
    assert "ckpt-2" in message


@pytest.mark.slow
def test_run_directory_contents(lifecycle):
    _assert_ok(lifecycle["a"])
    run = lifecycle["a_dir"]
    out = lifecycle["a"]["out"]
    assert "tensorboard --logdir run/logs" in out and "run/samples" in out  # started as --run-dir run
    assert "step 6 of 6" in out and "bad image files skipped: none" in out
    expected_forms = "keras" if tf.config.list_logical_devices("GPU") else "cpu"
    assert f"convolutions   {expected_forms} forms (auto: " in out and "TF32           off (--tf32 false" in out
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["img_size"] == 16 and saved["train"]["total_iters"] == 6
    assert saved["model"]["domain_names"] == ["circle", "square", "triangle"]
    assert _steps(run) == [3, 6]
    jpegs = sorted(p.name for p in (run / "samples").glob("*.jpg"))
    assert jpegs == sorted(f"{step:06d}_{kind}.jpg" for step in (3, 6)
                           for kind in ("reference", "latent_psi0.5", "latent_psi0.7", "latent_psi1.0"))
    for path in (run / "samples").glob("*.jpg"):
        with Image.open(path) as image:
            image.verify()
    tags = {}
    for path in (run / "logs").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                tags.setdefault(value.tag, set()).add(event.step)
    for key in (*LOG_KEYS, "learning_rate/generator", "learning_rate/mapping_network", "speed/steps_per_second"):
        assert key in tags, key
    assert tags["D/latent_real"] == {4} and tags["samples/reference"] == {3, 6}  # every --log-every 4 steps


@pytest.mark.slow
def test_load_opens_the_finished_run(lifecycle):
    _assert_ok(lifecycle["a"])
    model = stargan_keras.load(lifecycle["a_dir"])
    assert model.config.model.img_size == 16
    reader = tf.train.load_checkpoint(str(lifecycle["a_dir"] / "checkpoints" / "ckpt-6"))
    for name, variable in torch_named_variables(model.generator).items():
        key = f"ema_networks/generator/{name.replace('.', '..')}/.ATTRIBUTES/VARIABLE_VALUE"
        np.testing.assert_array_equal(variable.numpy(), reader.get_tensor(key))
    x = np.zeros((1, 16, 16, 3), np.float32)
    assert model.generator(x, model.mapping_network(np.zeros((1, 16), np.float32), np.array([1]))).shape == x.shape


@pytest.mark.slow
def test_refuses_to_resume_with_other_networks(lifecycle, capsys, tmp_path):
    _assert_ok(lifecycle["a"])
    run = shutil.copytree(lifecycle["a_dir"], tmp_path / "a")  # the shared run is only read
    before = (run / "config.yaml").read_text()
    argv = [*TINY, "--img-size", "32", "--run-dir", str(run)]
    assert train.main(argv) == 2
    err = capsys.readouterr().err
    assert "--img-size (run: 16, requested: 32)" in err and "--run-dir" in err and "Traceback" not in err
    assert (run / "config.yaml").read_text() == before


def test_unknown_flag_names_the_closest(capsys):
    with pytest.raises(SystemExit) as info:
        train.main(["--totl-iters", "5"])
    assert info.value.code == 2
    assert "did you mean --total-iters?" in capsys.readouterr().err


def test_unknown_yaml_key_names_the_file_and_the_closest(tmp_path, capsys):
    path = tmp_path / "mine.yaml"
    path.write_text("train:\n  totl_iters: 5\n")
    assert train.main(["--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and str(path) in err and "total_iters" in err and "Traceback" not in err


def test_bad_values_name_the_flag(tmp_path, capsys):
    assert train.main(["--img-size", "33", "--run-dir", str(tmp_path / "r")]) == 2
    assert "--img-size 33" in capsys.readouterr().err
    assert train.main(["--profile-steps", "5", "--run-dir", str(tmp_path / "r")]) == 2
    assert "--profile-steps" in capsys.readouterr().err
    assert train.main(["--dataset", str(tmp_path / "missing"), "--run-dir", str(tmp_path / "r")]) == 2
    assert str(tmp_path / "missing") in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_presets_from_the_command_line():
    config, _ = train.config_from_args([])
    assert config.data.dataset == "shapes" and config.run_dir == "runs/shapes"
    config, _ = train.config_from_args(["--dataset", "afhq"])
    assert (config.model.img_size, config.model.domain_names, config.train.lambda_ds) == (256, ["cat", "dog", "wild"],
                                                                                         2.0)
    config, _ = train.config_from_args(["--dataset", "/data/horses_zebras", "--img-size", "64"])
    assert config.run_dir == "runs/horses_zebras" and config.model.img_size == 64
    config, _ = train.config_from_args(["--config", "celeba_hq", "--lambda-ds", "0.5"])
    assert config.model.w_hpf == 1 and config.train.lambda_ds == 0.5


@pytest.mark.slow
def test_two_workers_through_the_command(tmp_path, warm_python):
    """--strategy multi_worker from TF_CONFIG on 127.0.0.1: both workers finish, only the chief writes a run,
    and the non-chief's scratch checkpoints are gone at the end.

    What is checked is the command's and the run directory's (family-agnostic core), so StarGAN v1's tiny networks
    (a third of v2's cost a process) carry it; StarGAN v2's steps on two workers are checked against one device by
    tests/test_families.py's replica test."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    processes = []
    for index in range(2):
        env = {**warm_python.env, "TMPDIR": str(scratch),
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        command = ["-m", "stargan_keras.train", *TINY_V1_TRAIN, "--total-iters", "2", "--save-every", "2",
                   "--sample-every", "2", "--strategy", "multi_worker", "--run-dir", str(tmp_path / f"worker{index}")]
        processes.append(warm_python.popen(command, cwd=tmp_path, env=env))
    chief, worker = (_finish(process) for process in processes)
    _assert_ok(chief)
    _assert_ok(worker)
    assert "batch 2 on 2 replica(s)" in chief["out"] and "step 2 of 2" in chief["out"]
    assert _steps(tmp_path / "worker0") == [2]
    assert sorted(p.name for p in (tmp_path / "worker0" / "samples").glob("000002_*.jpg")) == [
        "000002_interpolation.jpg", "000002_translations.jpg"]
    assert not (tmp_path / "worker1").exists()  # the non-chief saved into a scratch directory
    assert not list(scratch.glob("stargan_keras_worker_*")), "the non-chief's scratch directory was left behind"


@pytest.mark.slow
def test_mirrored_run_trains_on_the_same_batches_as_the_default_run(lifecycle, tmp_path, warm_python):
    """fit under MirroredStrategy (StarGANv2's own train function) trains on the default run's batches and weights."""
    run = tmp_path / "mirrored"
    result = _finish(_start(warm_python, [*TINY, "--total-iters", "3", "--strategy", "mirrored", "--run-dir",
                                          str(run)], tmp_path))
    _assert_ok(result)
    _assert_ok(lifecycle["a"])
    default = tf.train.load_checkpoint(str(lifecycle["a_dir"] / "checkpoints" / "ckpt-3"))
    mirrored = tf.train.load_checkpoint(str(run / "checkpoints" / "ckpt-3"))
    names = [n for n in default.get_variable_to_shape_map() if n.startswith(("networks/", "ema_networks/"))]
    assert names
    for name in names:
        np.testing.assert_allclose(mirrored.get_tensor(name), default.get_tensor(name), rtol=1e-4, atol=1e-6,
                                   err_msg=name)


@pytest.mark.slow
def test_mixed_bfloat16_through_the_command(tmp_path, capsys):
    """The command's main in-process (the conftest restores the float32 policy it sets)."""
    run = tmp_path / "bf16"
    code = train.main([*TINY, "--total-iters", "2", "--save-every", "2", "--sample-every", "2",
                       "--precision", "mixed_bfloat16", "--run-dir", str(run)])
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    assert "mixed_bfloat16" in out and "step 2 of 2" in out
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["precision"] == "mixed_bfloat16"
    reader = tf.train.load_checkpoint(str(run / "checkpoints" / "ckpt-2"))
    weights = [reader.get_tensor(n) for n in reader.get_variable_to_shape_map() if n.startswith("networks/")]
    assert weights and all(w.dtype == np.float32 and np.isfinite(w).all() for w in weights)  # float32 variables


@pytest.mark.parametrize("family", ["v2", "v1"])
def test_help_lists_every_flag_of_the_family_and_no_other(capsys, monkeypatch, family):
    """`train --help` shows StarGAN v2's fields, `train --model v1 --help` v1's: each with its help and default,
    and none of the other family's."""
    from stargan_keras import families

    monkeypatch.setenv("COLUMNS", "1000")  # one line per flag: argparse wraps to the terminal width
    with pytest.raises(SystemExit):
        train.main(["--model", family, "--help"])
    text = capsys.readouterr().out
    own = families.get(family).config_class.flat_fields()
    for name, (section, _cls) in own.items():
        key = name if section is None else f"{section}.{name}"
        assert f"--{name.replace('_', '-')} VALUE" in text and f"[{key}; default" in text, name
    others = {name for other in families.names() if other != family
              for name in families.get(other).config_class.flat_fields()} - set(own)
    assert others and not [name for name in others if f"--{name.replace('_', '-')} VALUE" in text]


@pytest.mark.parametrize("argv, family", [(["--lambda-gp", "5"], "StarGAN v1 flag: pass --model v1"),
                                          (["--model", "v1", "--lambda-ds", "2"], "StarGAN v2 flag: pass --model v2")])
def test_a_flag_of_the_other_family_names_it(capsys, argv, family):
    with pytest.raises(SystemExit) as info:
        train.main(argv)
    assert info.value.code == 2 and family in capsys.readouterr().err