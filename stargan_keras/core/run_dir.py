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
from tensorflow.python.checkpoint.checkpoint_management import CheckpointState

from stargan_keras.core.config import ConfigError
from stargan_keras.core.layers import torch_named_variables
from stargan_keras.core.safe_files import (MARKER_FILE, MODEL_KIND, RUN_KIND, UnsafeFileError, is_temporary_name,
                                           open_no_follow, read_marker_kind, read_small_file, refuse_links,
                                           write_atomic, write_marker)

CONFIG_FILE = "config.yaml"
STEP_KEY = "step/.ATTRIBUTES/VARIABLE_VALUE"  # where the trainer's `step` variable sits in a checkpoint
LOCK_FILE = ".lock"
INDEX_FILE = "checkpoint"  # TensorFlow's index of a CheckpointManager's checkpoints
MAX_INDEX_BYTES = 2**20  # the index names a few checkpoints; a larger file is not one
GENERATOR_WEIGHTS = "generator.weights.h5"  # what every model directory holds (`model_dir.weights_file`)
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
            check_run_target(self.root)
            handle = open_no_follow(self.root / LOCK_FILE, f"--run-dir {self.root}")
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
            if read_marker_kind(self.root) != RUN_KIND:
                write_marker(self.root, RUN_KIND)
            try:
                yield self
            finally:
                if created and sorted(os.listdir(self.root)) == sorted([LOCK_FILE, MARKER_FILE]):
                    for name in (LOCK_FILE, MARKER_FILE):  # a run that wrote nothing leaves nothing
                        os.unlink(self.root / name)
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

    def repair_index(self, log=print) -> None:
        """Rewrite TensorFlow's `checkpoints/checkpoint` index from the checkpoints themselves when it cannot be
        read (not UTF-8, not a CheckpointState, too large, a link), so that a CheckpointManager opened on the
        directory sees every intact checkpoint instead of stopping on a UnicodeDecodeError."""
        from google.protobuf import text_format

        index = self.checkpoints / INDEX_FILE
        if not index.exists() and not index.is_symlink():
            return
        try:
            if index.is_symlink():
                raise UnsafeFileError(f"{index} is a symbolic link")
            text_format.Parse(read_small_file(index, MAX_INDEX_BYTES, "checkpoint index").decode("utf-8"),
                              CheckpointState())
            return
        except (UnsafeFileError, UnicodeDecodeError, text_format.ParseError) as err:
            reason = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        found = list(reversed(self.checkpoint_prefixes()))  # oldest first
        prefixes = [Path(prefix).name for prefix in found]
        if prefixes:
            # Timestamps newer than the last preserved one keep the checkpoints under the manager's retention.
            times = [Path(prefix + ".index").stat().st_mtime for prefix in found]
            state = CheckpointState(model_checkpoint_path=prefixes[-1], all_model_checkpoint_paths=prefixes,
                                    all_model_checkpoint_timestamps=times, last_preserved_timestamp=min(times) - 1)
            write_atomic(index, text_format.MessageToString(state))
        else:
            index.unlink()
        log(f"warning: {index} could not be read ({reason}); rewrote it from the checkpoints found "
            f"({', '.join(prefixes) or 'none'})")

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


def directory_kind(directory: str | Path) -> str | None:
    """What a directory holds: its marker's kind, or for one written before markers, what its files say
    (config.yaml with checkpoints/: a run; with generator.weights.h5: a model); None for anything else."""
    directory = Path(directory)
    kind = read_marker_kind(directory)
    if kind is not None:
        return kind
    if (directory / CONFIG_FILE).is_file():
        if (directory / GENERATOR_WEIGHTS).is_file():
            return MODEL_KIND
        if (directory / "checkpoints").is_dir():
            return RUN_KIND
    return None


def held_by_live_process(directory: str | Path) -> bool:
    """Whether a training process holds `directory`'s lock now (the kernel drops it when the holder dies)."""
    try:
        fd = os.open(Path(directory) / LOCK_FILE, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def shown(entries: list[str]) -> str:
    """A few directory entries for an error message."""
    return ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")


def check_run_target(root: Path) -> None:
    """A run directory is a new or empty directory, or one of this project's runs; its config, lock and
    checkpoints are its own files, not links into elsewhere."""
    try:
        refuse_links(root, (LOCK_FILE, CONFIG_FILE, "checkpoints", MARKER_FILE), "--run-dir")
    except UnsafeFileError as err:
        raise ConfigError(str(err)) from None
    entries = sorted(name for name in os.listdir(root) if name != LOCK_FILE and not is_temporary_name(name))
    kind = directory_kind(root)
    if kind == MODEL_KIND:
        raise ConfigError(f"--run-dir {root} is a model directory (of `convert` or an earlier export); training "
                          "there would rewrite its config and leave it unreadable. Pass a new --run-dir.")
    if entries and kind != RUN_KIND:
        raise ConfigError(f"--run-dir {root} is not empty ({shown(entries)}) and is not a training run: training "
                          "would replace those files. Pass a new or empty --run-dir.")


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
