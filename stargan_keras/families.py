"""The registry of model families: the one place that knows which families exist.

Commands, `serving/` and the browser demo ask it for the family of a name, a config, a YAML file, a run or
model directory, or an export's signatures, and then ask that family object (a `core.family.Family`) for
its config class, networks, trainer, translator, serving module, converter, figures and evaluation. The
core never imports it: what the core needs of a family is handed to it. Adding a family is one folder with
a `family.py` that defines `FAMILY`, and one line here.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from stargan_keras.core.config import (FAMILY_KEY, FLAG_ALIASES, ConfigError, RunConfig, family_from_argv, flag,
                                       flag_value, preset_path, read_yaml)
from stargan_keras.core.model_dir import config_file

FAMILY_MODULES = {
    "v2": "stargan_keras.v2.family",  # StarGAN v2 (Choi et al., CVPR 2020)
    "v1": "stargan_keras.v1.family",  # StarGAN (Choi et al., CVPR 2018)
}
DEFAULT = "v2"


def names() -> list[str]:
    return list(FAMILY_MODULES)


def get(name: str):
    """The family object registered as `name`."""
    if name not in FAMILY_MODULES:
        raise ConfigError(f"--model-family {name!r}: choose one of {', '.join(FAMILY_MODULES)}.")
    return importlib.import_module(FAMILY_MODULES[name]).FAMILY


def all_families() -> list:
    return [get(name) for name in FAMILY_MODULES]


def describe() -> str:
    return ", ".join(f"{name} ({get(name).title})" for name in FAMILY_MODULES)


# -- configurations ----------------------------------------------------------------------------------------------
def of_config(config: RunConfig):
    return get(config.FAMILY)


def config_from_dict(data, source: str = "config") -> RunConfig:
    """A config of the family that `data[model_family]` names (the default family when absent)."""
    name = data.get(FAMILY_KEY, DEFAULT) if isinstance(data, dict) else DEFAULT
    if name not in FAMILY_MODULES:
        raise ConfigError(f"{source}: {FAMILY_KEY} {name!r}: choose one of {', '.join(FAMILY_MODULES)}.")
    return get(name).config_class.from_dict(data, source)


def read_config(path: str | Path) -> RunConfig:
    """The config a YAML file (a preset, a run's or a model directory's config.yaml) holds, of its family."""
    return config_from_dict(read_yaml(path) or {}, str(path))


def load_config(name_or_path: str) -> RunConfig:
    """A preset by name (`afhq`, `v1_celeba`, ...) or a YAML file path."""
    return read_config(preset_path(name_or_path))


# -- directories and exports ---------------------------------------------------------------------------------
def of_directory(path: str | Path):
    """The family of a run or model directory, from its config.yaml."""
    return of_config(read_config(config_file(path)))


def load_networks(path: str | Path) -> tuple[RunConfig, object]:
    """The config and networks of a model directory, or of a run directory's latest checkpoint."""
    config = read_config(config_file(path))
    return config, of_config(config).load_networks(Path(path), config)


def load(path: str | Path, **kwargs):
    """Open a model directory or a training run directory as its family's translation object (StarGAN v2: a
    `v2.inference.Translator` over the latest EMA networks; v1: a `v1.inference.Translator`)."""
    config, networks = load_networks(path)
    return of_config(config).translator(config, networks, **kwargs)


def of_signatures(signature_names):
    """The family whose serving signatures an export has (the default family when none has all of its own)."""
    present = set(signature_names)
    return next((f for f in all_families() if set(f.signatures.names) <= present), get(DEFAULT))


def of_tflite_signatures(signature_names):
    """The family whose TFLite signatures (its table's `tflite_names`) a .tflite file has, or None."""
    present = set(signature_names)
    return next((f for f in all_families() if set(f.signatures.tflite_names) <= present), None)


# -- command lines -------------------------------------------------------------------------------------------
def of_command_line(argv) -> str:
    """The family a command line asks for: `--model`, else the `--config` file's, else the default."""
    explicit = family_from_argv(argv)
    if explicit is not None:
        return explicit if explicit in FAMILY_MODULES else DEFAULT  # the full parse names the choices
    config_arg = flag_value(argv, "--config")
    if config_arg is not None:
        try:
            data = read_yaml(preset_path(config_arg)) or {}
        except ConfigError:
            return DEFAULT  # the full parse reports the bad --config
        if isinstance(data, dict) and data.get(FAMILY_KEY) in FAMILY_MODULES:
            return data[FAMILY_KEY]
    return DEFAULT


def add_family_flag(parser: argparse.ArgumentParser) -> None:
    """`--model` / `--model-family`: which family's configuration the other flags are fields of."""
    parser.add_argument(*FLAG_ALIASES[FAMILY_KEY], flag(FAMILY_KEY), dest=FAMILY_KEY, default=None,
                        metavar="FAMILY",
                        help=f"model family: {describe()} [default: the preset's, else {DEFAULT}]")


def other_family_flag(family: str):
    """A parser hint for flags unknown to `family`: 'a StarGAN v1 flag: pass --model v1' when another family has
    that field."""
    def hint(flag_text: str) -> str | None:
        name = flag_text.split("=")[0].lstrip("-").replace("-", "_")
        for other in names():
            if other != family and name in get(other).config_class.flat_fields():
                return f"{flag_text.split('=')[0]} is a {get(other).title} flag: pass --model {other}"
        return None

    return hint
