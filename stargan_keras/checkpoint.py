"""Where networks live on disk: the two directory layouts, their writers and their readers.

- A *model directory* (written by the converter or `save_networks`): `config.yaml`
  and one `<network>.weights.h5` per network.
- A *training run directory* (`RunDir`): `config.yaml`, `checkpoints/` (TensorFlow
  checkpoints of the object graph made by `training_checkpoint`), `samples/`, `logs/`
  and `eval/`.

Both hold `fan.weights.h5` when the generator has high-pass face skips (w_hpf > 0): the
frozen face-landmark network that makes its masks travels with the model, so that a
directory alone translates as the authors' code does.

`load_networks` reads either one: a model directory's networks, or a run's latest
EMA networks (and trained discriminator). `stargan_keras.load` wraps it in a
`Translator`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

import tensorflow as tf
from tensorflow.python.checkpoint.checkpoint_management import CheckpointState

from .config import Config, ConfigError
from .safe_files import (MARKER_FILE, MODEL_KIND, RUN_KIND, UnsafeFileError, is_temporary_name, open_no_follow,
                         read_marker_kind, read_small_file, refuse_links, write_atomic, write_marker)
from .layers import torch_named_variables
from .networks import Networks, build_networks

CONFIG_FILE = "config.yaml"
FAN_FILE = "fan.weights.h5"
STEP_KEY = "step/.ATTRIBUTES/VARIABLE_VALUE"  # where the trainer's `step` variable sits in a checkpoint
LOCK_FILE = ".lock"
INDEX_FILE = "checkpoint"  # TensorFlow's index of a CheckpointManager's checkpoints
MAX_INDEX_BYTES = 2**20  # the index names a few checkpoints; a larger file is not one
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
        if (directory / weights_file("generator")).is_file():
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


def _shown(entries: list[str]) -> str:
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
        raise ConfigError(f"--run-dir {root} is not empty ({_shown(entries)}) and is not a training run: training "
                          "would replace those files. Pass a new or empty --run-dir.")


def remove_partial_save(prefix: str) -> None:
    """Delete what a failed save of checkpoint `prefix` left: TensorFlow's `<prefix>_temp` staging, ours."""
    for leftover in Path(prefix).parent.glob(f"{Path(prefix).name}_temp*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def check_fan_source(config: Config, directory: str | Path | None, where: str) -> None:
    """Before any work: a w_hpf > 0 model has its FAN, as `directory`'s own `fan.weights.h5` (when given) or a
    `--fan-checkpoint` file; a model never silently runs without its face masks."""
    if config.model.w_hpf <= 0 or (directory is not None and (Path(directory) / FAN_FILE).exists()):
        return
    if not config.model.fan_checkpoint:
        from .face.fan import WING_URL

        raise ConfigError(
            f"{where}: --w-hpf {config.model.w_hpf:g} needs the face-landmark network (FAN) behind the generator's "
            f"face masks, and there is no {FAN_FILE}: pass --fan-checkpoint wing.ckpt (the authors publish it at "
            f"{WING_URL}; `bash download.sh wing` in clovaai/stargan-v2), or --w-hpf 0 for a model without face "
            "skips.")
    if not Path(config.model.fan_checkpoint).is_file():
        raise ConfigError(f"--fan-checkpoint {config.model.fan_checkpoint}: no such file. Pass the authors' "
                          "wing.ckpt.")


def face_network(config: Config, directory: str | Path, save: bool = False, log=print):
    """The FAN of a w_hpf > 0 model (None when w_hpf is 0): `directory`'s own `fan.weights.h5`, else
    `--fan-checkpoint` converted and, with `save`, written into `directory` (atomically) to travel with it."""
    if config.model.w_hpf <= 0:
        return None
    from .face.fan import load_fan, load_fan_checkpoint, save_fan

    own = Path(directory) / FAN_FILE
    if own.exists():
        if config.model.fan_checkpoint and save:
            log(f"using {own}; --fan-checkpoint {config.model.fan_checkpoint} is not read")
        return load_fan(own)
    check_fan_source(config, directory, str(directory))
    fan = load_fan_checkpoint(config.model.fan_checkpoint)
    if save:
        staging = own.with_name(f".{os.getpid()}.{os.urandom(4).hex()}.{FAN_FILE}")  # no name to plant a link at
        save_fan(fan, staging)
        os.replace(staging, own)
    return fan


def is_v1_directory(path: str | Path) -> bool:
    """Whether a run or model directory holds a StarGAN v1 model (its config says so)."""
    config = Path(path) / CONFIG_FILE
    return config.is_file() and Config.load(config).model_family == "v1"


def weights_file(name: str) -> str:
    return f"{name}.weights.h5"


def load_weights_checked(network, path: Path) -> None:
    """`network.load_weights(path)` once the file's declared datasets are known to fit the network."""
    from .safe_files import UnsafeFileError, check_weights_file

    try:
        check_weights_file(path, network, "model file")
    except UnsafeFileError as err:
        raise ConfigError(str(err)) from None
    network.load_weights(path)


def is_model_directory(path: str | Path) -> bool:
    return (Path(path) / weights_file("generator")).exists()


def save_networks(directory: str | Path, config: Config, networks: Networks, overwrite: bool = False) -> Path:
    """Write a model directory atomically: all files appear together or not at all.

    Only a model directory is replaced (`check_model_target`): the old one is moved to a fresh
    hidden name and removed after the swap, or, when it holds files of the user's (with
    `overwrite`), kept whole as `NAME.replaced-*/`. A `.NAME.old/` of the user's is never touched.
    """
    directory = Path(directory).resolve()
    check_model_target(directory, overwrite)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the model from a serving container's user
    retired = None
    try:
        config.save(staging / CONFIG_FILE)
        for name, network in networks.items():
            network.save_weights(staging / weights_file(name))
        fan = getattr(networks, "fan", None)  # StarGAN v1's networks have none
        if fan is not None:
            from .face.fan import save_fan

            save_fan(fan, staging / FAN_FILE)
        write_marker(staging, MODEL_KIND)
        if directory.exists():
            keep_old = check_model_target(directory, overwrite)  # again: it may have changed meanwhile
            prefix = f"{directory.name}.replaced-" if keep_old else f".{directory.name}.retired-"
            retired = Path(tempfile.mkdtemp(prefix=prefix, dir=directory.parent))
            directory.rename(retired)  # onto the empty directory just made: nothing of the user's is replaced
            staging.rename(directory)
        else:
            staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if retired is not None and not directory.exists():
            retired.rename(directory)
        elif retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
        raise
    if retired is not None and retired.name.startswith("."):
        shutil.rmtree(retired, ignore_errors=True)
    return directory


MODEL_FILES = re.compile(r"(config\.yaml|[a-z_]+\.weights\.h5|\.stargan_keras\.json)")  # what save_networks writes


def check_model_target(directory: str | Path, overwrite: bool = False) -> bool:
    """Refuse to write a model directory over anything but an empty directory or a model directory (callers
    check before long work too); True when the old model directory holds files this project did not write,
    which only `overwrite` allows: that directory is then moved aside whole, never deleted. Nothing replaces a
    training run, another kind of directory, or one that a live process holds."""
    directory = Path(directory).resolve()
    if not directory.exists():
        return False
    if not directory.is_dir():
        raise ConfigError(f"{directory} exists and is not a directory: pass a new directory for the model.")
    entries = sorted(p.name for p in directory.iterdir())
    if not entries:
        return False
    kind = directory_kind(directory)
    if held_by_live_process(directory):
        raise ConfigError(f"{directory} is in use by a running process (its {LOCK_FILE} is held); pass another "
                          "directory for the model.")
    if kind != MODEL_KIND:
        what = "a training run" if kind == RUN_KIND else "not a model directory"
        raise ConfigError(f"{directory} is not empty ({_shown(entries)}) and is {what}: writing the model there "
                          "would replace those files, so it is refused even with --overwrite. Pass a new or empty "
                          "directory.")
    foreign = [name + ("/" if (directory / name).is_dir() else "") for name in entries
               if not MODEL_FILES.fullmatch(name)]
    if foreign and not overwrite:
        raise ConfigError(f"{directory} is a model directory that also holds {_shown(foreign)}, which this project "
                          "did not write; replacing it would delete them. Move them away, pass another directory, "
                          f"or --overwrite to move the old directory aside (to {directory.name}.replaced-*/).")
    return bool(foreign)


def training_checkpoint(networks: Networks, ema_networks: Networks | None, optimizers: dict | None = None,
                        **extra) -> tf.train.Checkpoint:
    """The object graph of a training checkpoint; the trainer adds optimizers, step and data state.

    Keras 3 keeps sub-layers in lists that TensorFlow's checkpoint tracking cannot
    see, so variables are tracked explicitly: network weights by their upstream
    names (stable across processes, unlike Keras' generated layer names), and
    optimizer variables by position (fixed by the order they were built in).
    """
    tracked = {"networks": _trackable(networks)}
    if ema_networks is not None:  # StarGAN v1 keeps no EMA copies
        tracked["ema_networks"] = _trackable(ema_networks)
    if optimizers:
        tracked["optimizers"] = tf.train.Checkpoint(
            **{name: tf.train.Checkpoint(variables=list(opt.variables)) for name, opt in optimizers.items()})
    return tf.train.Checkpoint(**tracked, **extra)


def _trackable(networks: Networks) -> tf.train.Checkpoint:
    return tf.train.Checkpoint(**{name: torch_named_variables(net) for name, net in networks.items()})


def load_networks(path: str | Path) -> tuple[Config, Networks]:
    """The config and networks of a model directory, or of a run directory's latest checkpoint (its EMA
    networks, with the trained discriminator; for StarGAN v1, G and D themselves)."""
    path = Path(path)
    config_path = path / CONFIG_FILE
    if not config_path.exists():
        raise ConfigError(f"{path} is not a stargan_keras model or run directory: it has no {CONFIG_FILE}. "
                          "Pass a directory written by `stargan_keras.convert` or by training (--run-dir).")
    config = Config.load(config_path)
    if config.model_family == "v1":
        return config, _load_v1_networks(path, config)
    if is_model_directory(path):
        has_d = (path / weights_file("discriminator")).exists()
        networks = build_networks(config.model, with_discriminator=has_d)
        for name, network in networks.items():
            load_weights_checked(network, path / weights_file(name))
        networks.fan = face_network(config, path)
        return config, networks
    run = RunDir(path)
    ema = build_networks(config.model, with_discriminator=False, name_prefix="ema_")
    ema.discriminator = build_networks(config.model, with_discriminator=True).discriminator
    restore_graph = tf.train.Checkpoint(
        networks=tf.train.Checkpoint(discriminator=torch_named_variables(ema.discriminator)),
        ema_networks=_trackable(dataclasses.replace(ema, discriminator=None)))
    if run.restore_latest(restore_graph, partial=True) is None:
        raise _no_weights_error(run)
    ema.fan = face_network(config, path)
    return config, ema


def _no_weights_error(run: RunDir) -> ConfigError:
    return ConfigError(f"{run.root} has a {CONFIG_FILE} but no network weights: neither "
                       f"{weights_file('generator')} nor a checkpoint in {run.checkpoints}/. "
                       "Train it first, or pass the run directory that holds the checkpoints.")


def _load_v1_networks(path: Path, config: Config):
    """StarGAN v1's G and D (`v1.networks.V1Networks`): a model directory's files (D if present), or a run's
    latest checkpoint (v1 keeps no EMA copies: the trained networks themselves)."""
    from .v1.networks import build_networks as build_v1_networks

    if is_model_directory(path):
        networks = build_v1_networks(config.v1, with_discriminator=(path / weights_file("discriminator")).exists())
        for name, network in networks.items():
            load_weights_checked(network, path / weights_file(name))
        return networks
    networks, run = build_v1_networks(config.v1), RunDir(path)
    if run.restore_latest(tf.train.Checkpoint(networks=_trackable(networks)), partial=True) is None:
        raise _no_weights_error(run)
    return networks
