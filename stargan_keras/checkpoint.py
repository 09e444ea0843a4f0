"""Where networks live on disk, and `load()` to get them back.

Two layouts, one loader:
- a *model directory* (written by the converter or `save_networks`): `config.yaml`
  and one `<network>.weights.h5` per network;
- a *training run directory*: `config.yaml` and `checkpoints/`, TensorFlow
  checkpoints of the object graph made by `training_checkpoint`, of which `load`
  restores the EMA networks (and the trained discriminator).
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from .config import Config, ConfigError
from .layers import torch_named_variables
from .networks import Networks, build_networks

CONFIG_FILE = "config.yaml"
CHECKPOINTS_DIR = "checkpoints"


@dataclasses.dataclass
class LoadedModel:
    """A model ready for inference: its config and its (EMA) networks."""

    config: Config
    generator: object
    mapping_network: object
    style_encoder: object
    discriminator: object | None

    @property
    def networks(self) -> Networks:
        return Networks(self.generator, self.mapping_network, self.style_encoder, self.discriminator)


def weights_file(name: str) -> str:
    return f"{name}.weights.h5"


def save_networks(directory: str | Path, config: Config, networks: Networks) -> Path:
    """Write a model directory atomically: all files appear together or not at all."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the model from a serving container's user
    try:
        config.save(staging / CONFIG_FILE)
        for name, network in networks.items():
            network.save_weights(staging / weights_file(name))
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


def training_checkpoint(networks: Networks, ema_networks: Networks, optimizers: dict | None = None,
                        **extra) -> tf.train.Checkpoint:
    """The object graph of a training checkpoint; the trainer adds optimizers, step and data state.

    Keras 3 keeps sub-layers in lists that TensorFlow's checkpoint tracking cannot
    see, so variables are tracked explicitly: network weights by their upstream
    names (stable across processes, unlike Keras' generated layer names), and
    optimizer variables by position (fixed by the order they were built in).
    """
    tracked = {"networks": _trackable(networks), "ema_networks": _trackable(ema_networks)}
    if optimizers:
        tracked["optimizers"] = tf.train.Checkpoint(
            **{name: tf.train.Checkpoint(variables=list(opt.variables)) for name, opt in optimizers.items()})
    return tf.train.Checkpoint(**tracked, **extra)


def _trackable(networks: Networks) -> tf.train.Checkpoint:
    return tf.train.Checkpoint(**{name: torch_named_variables(net) for name, net in networks.items()})


def latest_training_checkpoint(run_dir: str | Path) -> str | None:
    return tf.train.latest_checkpoint(str(Path(run_dir) / CHECKPOINTS_DIR))


def load(path: str | Path) -> LoadedModel:
    """Open a model directory or a training run directory (its latest EMA networks)."""
    path = Path(path)
    config_path = path / CONFIG_FILE
    if not config_path.exists():
        raise ConfigError(f"{path} is not a stargan_keras model or run directory: it has no {CONFIG_FILE}. "
                          "Pass a directory written by `stargan_keras.convert` or by training (--run-dir).")
    config = Config.load(config_path)
    if (path / weights_file("generator")).exists():
        has_d = (path / weights_file("discriminator")).exists()
        networks = build_networks(config.model, with_discriminator=has_d)
        for name, network in networks.items():
            network.load_weights(path / weights_file(name))
        return LoadedModel(config, *_fields(networks))
    latest = latest_training_checkpoint(path)
    if latest is None:
        raise ConfigError(f"{path} has a {CONFIG_FILE} but no network weights: neither "
                          f"{weights_file('generator')} nor a checkpoint in {path / CHECKPOINTS_DIR}/. "
                          "Train it first, or pass the run directory that holds the checkpoints.")
    ema = build_networks(config.model, with_discriminator=False, name_prefix="ema_")
    discriminator = build_networks(config.model, with_discriminator=True).discriminator
    restore_graph = tf.train.Checkpoint(
        networks=tf.train.Checkpoint(discriminator=torch_named_variables(discriminator)),
        ema_networks=_trackable(ema))
    restore_graph.restore(latest).expect_partial().assert_existing_objects_matched()
    return LoadedModel(config, ema.generator, ema.mapping_network, ema.style_encoder, discriminator)


def _fields(networks: Networks) -> tuple:
    return (networks.generator, networks.mapping_network, networks.style_encoder, networks.discriminator)
