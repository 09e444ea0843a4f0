"""The face-landmark network that travels with a w_hpf > 0 model: `fan.weights.h5` in its run or model
directory, or the authors' `wing.ckpt` converted into it once. A model never silently runs without its
face masks: the checks here run before any work."""

from __future__ import annotations

import os
from pathlib import Path

from stargan_keras.core.config import ConfigError

FAN_FILE = "fan.weights.h5"


def check_fan_source(config, directory: str | Path | None, where: str) -> None:
    """Before any work: a w_hpf > 0 model has its FAN, as `directory`'s own `fan.weights.h5` (when given) or a
    `--fan-checkpoint` file."""
    if config.model.w_hpf <= 0 or (directory is not None and (Path(directory) / FAN_FILE).exists()):
        return
    if not config.model.fan_checkpoint:
        from stargan_keras.face.fan import WING_URL

        raise ConfigError(
            f"{where}: --w-hpf {config.model.w_hpf:g} needs the face-landmark network (FAN) behind the generator's "
            f"face masks, and there is no {FAN_FILE}: pass --fan-checkpoint wing.ckpt (the authors publish it at "
            f"{WING_URL}; `bash download.sh wing` in clovaai/stargan-v2), or --w-hpf 0 for a model without face "
            "skips.")
    if not Path(config.model.fan_checkpoint).is_file():
        raise ConfigError(f"--fan-checkpoint {config.model.fan_checkpoint}: no such file. Pass the authors' "
                          "wing.ckpt.")


def face_network(config, directory: str | Path, save: bool = False, log=print):
    """The FAN of a w_hpf > 0 model (None when w_hpf is 0): `directory`'s own `fan.weights.h5`, else
    `--fan-checkpoint` converted and, with `save`, written into `directory` (atomically) to travel with it."""
    if config.model.w_hpf <= 0:
        return None
    from stargan_keras.face.fan import fan_from_file, load_fan, save_fan

    own = Path(directory) / FAN_FILE
    if own.exists():
        if config.model.fan_checkpoint and save:
            log(f"using {own}; --fan-checkpoint {config.model.fan_checkpoint} is not read")
        return load_fan(own)
    check_fan_source(config, directory, str(directory))
    fan = fan_from_file(config.model.fan_checkpoint)  # wing.ckpt, or a model directory's fan.weights.h5
    if save:
        staging = own.with_name(f".{os.getpid()}.{os.urandom(4).hex()}.{FAN_FILE}")  # no name to plant a link at
        save_fan(fan, staging)
        os.replace(staging, own)
    return fan


def save_fan_file(fan, directory: str | Path) -> Path:
    """The FAN as `directory/fan.weights.h5`, beside the networks it makes masks for."""
    from stargan_keras.face.fan import save_fan

    path = Path(directory) / FAN_FILE
    save_fan(fan, path)
    return path
