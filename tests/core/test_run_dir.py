"""The run directory: its layout, its latest checkpoint and step, and the lock that keeps a second run out."""

import errno
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from stargan_keras.core import run_dir
from stargan_keras.core.run_dir import RunDir
from stargan_keras.core.config import ConfigError

REPO = Path(__file__).resolve().parents[2]


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


def saved_run(tmp_path, steps=(2, 4, 6)):
    """A run directory with a checkpoint of `value = step` at each step, and the variable to restore into."""
    run = RunDir(tmp_path / "run")
    value = tf.Variable(0.0)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(value=value), str(run.checkpoints), max_to_keep=5)
    for step in steps:
        value.assign(float(step))
        manager.save(checkpoint_number=step)
    value.assign(-1.0)
    return run, value


def test_restore_takes_the_newest_intact_checkpoint_and_says_which_were_skipped(tmp_path):
    run, value = saved_run(tmp_path)
    data = run.checkpoints / "ckpt-6.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:5])  # truncated by a crash or a full disk
    (run.checkpoints / "ckpt-4.index").write_bytes(b"")  # an empty index
    messages = []
    restored = run.restore_latest(tf.train.Checkpoint(value=value), log=messages.append)
    assert restored.endswith("ckpt-2") and value.numpy() == 2.0
    assert len(messages) == 1 and "ckpt-6 (" in messages[0] and "ckpt-4 (" in messages[0]
    assert messages[0].endswith("using ckpt-2")


def test_a_garbled_index_file_does_not_hide_the_checkpoints(tmp_path):
    run, value = saved_run(tmp_path)
    (run.checkpoints / "checkpoint").write_text("model_checkpoint_path: {{{ garbage \x00")
    assert run.latest_checkpoint().endswith("ckpt-6")
    assert run.restore_latest(tf.train.Checkpoint(value=value)).endswith("ckpt-6") and value.numpy() == 6.0


def test_no_readable_checkpoint_is_an_error_not_a_fresh_start(tmp_path):
    run, value = saved_run(tmp_path, steps=(2, 4))
    for index in run.checkpoints.glob("*.index"):
        index.write_bytes(b"\x00" * 3)
    with pytest.raises(ConfigError, match=r"no checkpoint in .*checkpoints can be read: ckpt-4 .*ckpt-2"):
        run.restore_latest(tf.train.Checkpoint(value=value))
    assert value.numpy() == -1.0


def test_a_checkpoint_of_other_variables_does_not_fit(tmp_path):
    run, _ = saved_run(tmp_path, steps=(2,))
    other = tf.train.Checkpoint(weights=tf.Variable([1.0, 2.0]))
    with pytest.raises(ConfigError, match="does not fit the requested model"):
        run.restore_latest(other)


def test_an_empty_run_restores_nothing(tmp_path):
    assert RunDir(tmp_path / "new").restore_latest(tf.train.Checkpoint(value=tf.Variable(0.0))) is None


def disk_error(code: int):
    """`fail(*args, **kwargs)`: raises the OSError a full (ENOSPC) or read-only (EROFS) disk gives the writer."""
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    return fail


def files(directory) -> dict:
    """{name: bytes} of every entry (None for a directory)."""
    return {path.name: path.read_bytes() if path.is_file() else None for path in directory.iterdir()}


def assert_one_line_user_error(error, *paths):
    from stargan_keras.core.errors import UserError

    assert isinstance(error, UserError) and "\n" not in str(error), str(error)  # `error: ...`, exit 2
    assert all(str(path) in str(error) for path in paths), str(error)


def test_check_room_fails_before_training_on_a_full_disk(tmp_path, monkeypatch):
    run = RunDir(tmp_path / "run")
    disk_usage = shutil.disk_usage
    monkeypatch.setattr(run_dir.shutil, "disk_usage", lambda path: disk_usage(path)._replace(free=2**20))
    run.check_room(100_000)  # fits in the 1 MiB free
    with pytest.raises(ConfigError, match=r"1\.0 MiB free in .*checkpoints, but one checkpoint of this model takes 2\.0") as caught:
        run.check_room(2 * 2**20)
    assert_one_line_user_error(caught.value, run.checkpoints)


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC])
def test_check_room_fails_before_training_on_a_directory_it_cannot_write(code, tmp_path, monkeypatch):
    run = RunDir(tmp_path / "run")
    monkeypatch.setattr(run_dir.tempfile, "TemporaryFile", disk_error(code))
    with pytest.raises(ConfigError, match=rf"--run-dir .*: cannot write checkpoints in .*checkpoints \({os.strerror(code)}") as caught:
        run.check_room(1)
    assert_one_line_user_error(caught.value, run.root, run.checkpoints)
    assert list(run.checkpoints.iterdir()) == []


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_save_that_fails_on_disk_is_one_clear_error_and_leaves_no_partial_files(code, tmp_path, monkeypatch):
    """The disk fills (or turns read-only) once the new checkpoint's data is staged, before it is put in place."""
    import keras
    from tensorflow.python.ops import gen_io_ops

    from stargan_keras.core.callbacks import CheckpointWriteError, PeriodicCheckpoint

    run = RunDir(tmp_path / "run")
    weights = tf.Variable(tf.zeros([1000]))
    model = keras.Model()
    model.step = tf.Variable(0, dtype=tf.int64)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(weights=weights, step=model.step), str(run.checkpoints),
                                         max_to_keep=5)
    saver = PeriodicCheckpoint(manager, every=1)
    saver.set_model(model)
    for step in (1, 2):
        model.step.assign(step)
        weights.assign(tf.fill([1000], float(step)))
        saver.save()
    before = files(run.checkpoints)
    staged = []

    def merge_on_a_failing_disk(*args, **kwargs):
        staged.extend(path.name for path in run.checkpoints.glob("ckpt-3_temp*/*"))
        disk_error(code)()

    monkeypatch.setattr(gen_io_ops, "merge_v2_checkpoints", merge_on_a_failing_disk)
    model.step.assign(3)
    weights.assign(tf.fill([1000], 3.0))
    with pytest.raises(CheckpointWriteError, match=rf"could not save checkpoint .*ckpt-3 .*{os.strerror(code)}.*"
                                                   r"resumes from .*ckpt-2") as caught:
        saver.save()
    assert_one_line_user_error(caught.value, run.checkpoints / "ckpt-3")
    assert staged, "the failure came before any data was staged: the test checks nothing"
    assert files(run.checkpoints) == before  # nothing partial, old intact
    monkeypatch.undo()
    assert run.restore_latest(tf.train.Checkpoint(weights=weights, step=model.step)).endswith("ckpt-2")
    assert int(model.step.numpy()) == 2 and float(weights.numpy().max()) == 2.0
