"""A model directory (written by a converter or `save_networks`): `config.yaml` and one
`<network>.weights.h5` per network, with the family's extra files (StarGAN v2's face-landmark
network, `fan.weights.h5`, for a w_hpf > 0 model). Each family reads its own
(`Family.load_networks`); `stargan_keras.families.load_networks` finds the family first.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from stargan_keras.core.config import ConfigError, RunConfig
from stargan_keras.core.run_dir import CONFIG_FILE, RunDir


def weights_file(name: str) -> str:
    return f"{name}.weights.h5"


def is_model_directory(path: str | Path) -> bool:
    return (Path(path) / weights_file("generator")).exists()


def config_file(path: str | Path) -> Path:
    """The config.yaml of a run or model directory; a directory without one is a user error."""
    config_path = Path(path) / CONFIG_FILE
    if not config_path.exists():
        raise ConfigError(f"{path} is not a stargan_keras model or run directory: it has no {CONFIG_FILE}. "
                          "Pass a directory written by `stargan_keras.convert` or by training (--run-dir).")
    return config_path


def load_weight_files(path: Path, networks) -> None:
    """Each network's `<name>.weights.h5` of a model directory."""
    for name, network in networks.items():
        network.load_weights(path / weights_file(name))


def no_weights_error(run: RunDir) -> ConfigError:
    return ConfigError(f"{run.root} has a {CONFIG_FILE} but no network weights: neither "
                       f"{weights_file('generator')} nor a checkpoint in {run.checkpoints}/. "
                       "Train it first, or pass the run directory that holds the checkpoints.")


def save_networks(directory: str | Path, config: RunConfig, networks, overwrite: bool = False) -> Path:
    """Write a model directory atomically: all files appear together or not at all.

    An existing model directory is replaced; any other non-empty directory is refused
    unless `overwrite`, since replacing it would delete files this writer did not write.
    The networks object writes its family's extra files (`save_extra_files`: StarGAN v2's FAN).
    """
    directory = Path(directory).resolve()
    check_model_target(directory, overwrite)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the model from a serving container's user
    try:
        config.save(staging / CONFIG_FILE)
        for name, network in networks.items():
            network.save_weights(staging / weights_file(name))
        networks.save_extra_files(staging)
        if directory.exists():
            retired = directory.with_name(f".{directory.name}.old")
            shutil.rmtree(retired, ignore_errors=True)
            directory.rename(retired)
            staging.rename(directory)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def check_model_target(directory: str | Path, overwrite: bool = False) -> None:
    """Refuse to write a model directory over something else (callers check before long work too)."""
    directory = Path(directory).resolve()
    if not directory.exists() or overwrite:
        return
    if not directory.is_dir():
        raise ConfigError(f"{directory} exists and is not a directory: pass a new directory for the model.")
    entries = sorted(p.name for p in directory.iterdir())
    if entries and not (is_model_directory(directory) and (directory / CONFIG_FILE).exists()):
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise ConfigError(f"{directory} is not empty ({shown}) and is not a model directory: writing the model "
                          "there would replace those files. Pass a new or empty directory, or --overwrite to "
                          "replace it.")
