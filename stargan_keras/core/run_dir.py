"""A training run directory (`RunDir`): `config.yaml`, `checkpoints/` (TensorFlow checkpoints of the
object graph made by `training_checkpoint`), `samples/`, `logs/` and `eval/`; its lock, its room
for one more checkpoint, and its newest readable checkpoint. A model directory is
`core.model_dir`'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import shutil
import socket
import tempfile
from pathlib import Path

import tensorflow as tf

from stargan_keras.core.config import ConfigError
from stargan_keras.core.layers import torch_named_variables

CONFIG_FILE = "config.yaml"
STEP_KEY = "step/.ATTRIBUTES/VARIABLE_VALUE"  # where the trainer's `step` variable sits in a checkpoint
LOCK_FILE = ".lock"
CHECKPOINT_ROOM = 1.1  # free space wanted before training, in checkpoints: the manager writes before it deletes
# What reading a truncated or corrupt checkpoint raises (TensorFlow's reader is not consistent about it).
DAMAGED_CHECKPOINT_ERRORS = (tf.errors.OpError, IndexError, EOFError, OSError, UnicodeDecodeError)


@dataclasses.dataclass(frozen=True)
class RunDir:
    """The layout of a training run directory, and its latest checkpoint."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @contextlib.contextmanager
    def lock(self):
        """Hold the run directory for this process: a second training process on it fails at once, naming the
        first. The lock is the kernel's (flock), so it dies with its process, even a killed one."""
        created = not self.root.exists()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle = open(self.root / LOCK_FILE, "a+", encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"--run-dir {self.root}: cannot create it or write in it ({err.strerror}); pass a "
                              "directory you can write to.") from None
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise ConfigError(f"--run-dir {self.root} is in use by {holder}: wait for that run to end, or pass "
                                  "another --run-dir.") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"process {os.getpid()} on {socket.gethostname()}\n")
            handle.flush()
            try:
                yield self
            finally:
                if created and os.listdir(self.root) == [LOCK_FILE]:  # a run that wrote nothing leaves nothing
                    os.unlink(self.root / LOCK_FILE)
                    self.root.rmdir()

    def check_room(self, checkpoint_bytes: int) -> None:
        """Fail before training, not at the first save: checkpoints/ must be writable with room for one more."""
        try:
            self.checkpoints.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.checkpoints):
                pass
        except OSError as err:
            raise ConfigError(f"--run-dir {self.root}: cannot write checkpoints in {self.checkpoints} "
                              f"({err.strerror}); make it writable or pass another --run-dir.") from None
        free = shutil.disk_usage(self.checkpoints).free
        if free < checkpoint_bytes * CHECKPOINT_ROOM:
            raise ConfigError(f"--run-dir {self.root}: {free / 2**20:.1f} MiB free in {self.checkpoints}, but one "
                              f"checkpoint of this model takes {checkpoint_bytes / 2**20:.1f} MiB; free some space "
                              "or pass a --run-dir on a larger disk.")

    def checkpoint_prefixes(self) -> list[str]:
        """Every checkpoint that has an index file, newest first.

        Read from the files themselves, not from TensorFlow's `checkpoint` index file: a
        damaged index must not hide intact checkpoints. The trainer numbers checkpoints by
        step, so the highest number is the newest.
        """
        found = []
        for index in self.checkpoints.glob("ckpt-*.index"):
            number = index.name[len("ckpt-"):-len(".index")]
            if number.isdigit():
                found.append((int(number), str(index.with_suffix(""))))
        return [prefix for _, prefix in sorted(found, reverse=True)]

    def latest_checkpoint(self) -> str | None:
        """The prefix of the newest checkpoint (`.../checkpoints/ckpt-N`), or None."""
        prefixes = self.checkpoint_prefixes()
        return prefixes[0] if prefixes else None

    def restore_latest(self, checkpoint: tf.train.Checkpoint, partial: bool = False, log=print) -> str | None:
        """Restore the newest checkpoint that can be read, saying which ones could not; None if there is none.

        A checkpoint whose files are truncated or corrupt is skipped for the one before it;
        one that reads but does not fit `checkpoint` is an error (other networks), as is a
        run whose checkpoints are all unreadable: it never silently starts over.
        """
        damaged = []
        for prefix in self.checkpoint_prefixes():
            try:
                status = checkpoint.restore(prefix)
                (status.expect_partial() if partial else status).assert_existing_objects_matched()
            except DAMAGED_CHECKPOINT_ERRORS as err:
                reason = (getattr(err, "message", None) or str(err) or type(err).__name__).strip().splitlines()[0]
                damaged.append(f"{Path(prefix).name} ({reason[:160]})")
                continue
            except (AssertionError, ValueError) as err:
                raise ConfigError(f"checkpoint {prefix} does not fit the requested model ({type(err).__name__}: "
                                  f"{str(err)[:300]}). Pass --run-dir NEW_DIR to start a new run.") from None
            if damaged:
                log(f"warning: skipped damaged checkpoint(s) {'; '.join(damaged)}; using {Path(prefix).name}")
            return prefix
        if damaged:
            raise ConfigError(f"no checkpoint in {self.checkpoints} can be read: {'; '.join(damaged)}. Restore them "
                              "from a backup, or move them away to start the run over.")
        return None

    def step(self) -> int | None:
        """The training step of the latest checkpoint (None without one)."""
        latest = self.latest_checkpoint()
        if latest is None:
            return None
        reader = tf.train.load_checkpoint(latest)
        if reader.has_tensor(STEP_KEY):
            return int(reader.get_tensor(STEP_KEY))
        return int(latest.rsplit("-", 1)[-1])


def remove_partial_save(prefix: str) -> None:
    """Delete what a failed save of checkpoint `prefix` left: TensorFlow's `<prefix>_temp` staging, ours."""
    for leftover in Path(prefix).parent.glob(f"{Path(prefix).name}_temp*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def training_checkpoint(networks, ema_networks, optimizers: dict | None = None,
                        **extra) -> tf.train.Checkpoint:
    """The object graph of a training checkpoint; the trainer adds optimizers, step and data state.

    Keras 3 keeps sub-layers in lists that TensorFlow's checkpoint tracking cannot
    see, so variables are tracked explicitly: network weights by their upstream
    names (stable across processes, unlike Keras' generated layer names), and
    optimizer variables by position (fixed by the order they were built in).
    """
    tracked = {"networks": trackable(networks)}
    if ema_networks is not None:  # a family may keep no EMA copies
        tracked["ema_networks"] = trackable(ema_networks)
    if optimizers:
        tracked["optimizers"] = tf.train.Checkpoint(
            **{name: tf.train.Checkpoint(variables=list(opt.variables)) for name, opt in optimizers.items()})
    return tf.train.Checkpoint(**tracked, **extra)


def trackable(networks) -> tf.train.Checkpoint:
    """The networks' variables under their upstream names, for a checkpoint's object graph."""
    return tf.train.Checkpoint(**{name: torch_named_variables(net) for name, net in networks.items()})
