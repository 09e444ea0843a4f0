"""The run directory: its layout, its latest checkpoint and step, and the lock that keeps a second run out."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from stargan_keras.checkpoint import RunDir
from stargan_keras.config import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_layout_latest_checkpoint_and_step(tmp_path):
    run = RunDir(tmp_path / "run")
    assert (run.config, run.checkpoints, run.samples, run.logs, run.eval) == tuple(
        tmp_path / "run" / name for name in ("config.yaml", "checkpoints", "samples", "logs", "eval"))
    assert run.latest_checkpoint() is None and run.step() is None
    step = tf.Variable(0, dtype=tf.int64)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(step=step), str(run.checkpoints), max_to_keep=2)
    for value in (7, 12):
        step.assign(value)
        manager.save(checkpoint_number=value * 10)  # the file number is not the step
    assert run.latest_checkpoint().endswith("ckpt-120")
    assert run.step() == 12


def test_a_second_holder_is_refused_naming_the_first(tmp_path):
    run = RunDir(tmp_path / "run")
    with run.lock():
        with pytest.raises(ConfigError, match=rf"in use by process {os.getpid()} on {socket.gethostname()}"):
            with RunDir(tmp_path / "run").lock():
                pass
    with run.lock():  # released on exit
        pass


def test_a_run_dir_that_is_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "run").write_text("x")
    with pytest.raises(ConfigError, match="--run-dir .*run: cannot create it"):
        with RunDir(tmp_path / "run").lock():
            pass


@pytest.mark.slow
def test_train_exits_2_while_another_process_holds_the_run(tmp_path):
    run = RunDir(tmp_path / "run")
    with run.lock():
        result = subprocess.run(
            [sys.executable, "-m", "stargan_keras.train", "--run-dir", str(run.root), "--total-iters", "1",
             "--img-size", "16", "--shapes-train-per-domain", "4", "--shapes-val-per-domain", "2"],
            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"in use by process {os.getpid()}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not run.checkpoints.exists()


def test_a_run_that_wrote_nothing_leaves_no_directory(tmp_path):
    with pytest.raises(RuntimeError):
        with RunDir(tmp_path / "new" / "run").lock():
            raise RuntimeError("bad --dataset")
    assert not (tmp_path / "new" / "run").exists()
    existing = RunDir(tmp_path / "kept")
    existing.root.mkdir()
    with existing.lock():
        pass
    assert existing.root.is_dir()  # a directory the user made stays
