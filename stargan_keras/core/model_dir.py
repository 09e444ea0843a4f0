"""A model directory (written by a converter or `save_networks`): `config.yaml` and one
`<network>.weights.h5` per network, with the family's extra files (StarGAN v2's face-landmark
network, `fan.weights.h5`, for a w_hpf > 0 model). Each family reads its own
(`Family.load_networks`); `stargan_keras.families.load_networks` finds the family first.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from stargan_keras.core.config import ConfigError, RunConfig
from stargan_keras.core.run_dir import (CONFIG_FILE, GENERATOR_WEIGHTS, LOCK_FILE, RUN_KIND, RunDir, directory_kind,
                                        held_by_live_process, shown)
from stargan_keras.core.safe_files import MODEL_KIND, UnsafeFileError, check_weights_file, write_marker

MODEL_FILES = re.compile(r"(config\.yaml|[a-z_]+\.weights\.h5|\.stargan_keras\.json)")  # what save_networks writes


def weights_file(name: str) -> str:
    return f"{name}.weights.h5"


def is_model_directory(path: str | Path) -> bool:
    return (Path(path) / GENERATOR_WEIGHTS).exists()


def config_file(path: str | Path) -> Path:
    """The config.yaml of a run or model directory; a directory without one is a user error."""
    config_path = Path(path) / CONFIG_FILE
    if not config_path.exists():
        raise ConfigError(f"{path} is not a stargan_keras model or run directory: it has no {CONFIG_FILE}. "
                          "Pass a directory written by `stargan_keras.convert` or by training (--run-dir).")
    return config_path


def load_weight_files(path: Path, networks) -> None:
    """Each network's `<name>.weights.h5` of a model directory, once the file's declared datasets are known to fit
    the network (a small file can declare gigabytes)."""
    for name, network in networks.items():
        try:
            check_weights_file(path / weights_file(name), network, "model file")
        except UnsafeFileError as err:
            raise ConfigError(str(err)) from None
        network.load_weights(path / weights_file(name))


def no_weights_error(run: RunDir) -> ConfigError:
    return ConfigError(f"{run.root} has a {CONFIG_FILE} but no network weights: neither "
                       f"{weights_file('generator')} nor a checkpoint in {run.checkpoints}/. "
                       "Train it first, or pass the run directory that holds the checkpoints.")


def save_networks(directory: str | Path, config: RunConfig, networks, overwrite: bool = False) -> Path:
    """Write a model directory atomically: all files appear together or not at all.

    Only a model directory is replaced (`check_model_target`): the old one is moved to a fresh
    hidden name and removed after the swap, or, when it holds files of the user's (with
    `overwrite`), kept whole as `NAME.replaced-*/`. A `.NAME.old/` of the user's is never touched.
    The networks object writes its family's extra files (`save_extra_files`: StarGAN v2's FAN).
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
        networks.save_extra_files(staging)
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
        raise ConfigError(f"{directory} is not empty ({shown(entries)}) and is {what}: writing the model there "
                          "would replace those files, so it is refused even with --overwrite. Pass a new or empty "
                          "directory.")
    foreign = [name + ("/" if (directory / name).is_dir() else "") for name in entries
               if not MODEL_FILES.fullmatch(name)]
    if foreign and not overwrite:
        raise ConfigError(f"{directory} is a model directory that also holds {shown(foreign)}, which this project "
                          "did not write; replacing it would delete them. Move them away, pass another directory, "
                          f"or --overwrite to move the old directory aside (to {directory.name}.replaced-*/).")
    return bool(foreign)
