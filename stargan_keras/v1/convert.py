"""The authors' StarGAN v1 checkpoints (yunjey/stargan `solver.py`: `{step}-G.ckpt`, `{step}-D.ckpt`).

Each file is a plain state dict of one network, read with `torch.load(weights_only=True)`
(a file that carries code is refused, never run). Every tensor is checked against the
networks the config's `v1` section describes before anything is assigned or written;
misfits are listed by key and shape, with the flags that probably explain them. The
instance norms' running buffers are skipped: the authors' G never runs in eval mode,
so they never reach an output (see `stargan_keras.v1.networks`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stargan_keras.v1.config import Config, ModelConfig
from stargan_keras.core.layers import torch_named_variables
from stargan_keras.core.torch_io import ConversionError, assign_state_dict, check_state_dicts, is_tensor, load_torch_file
from stargan_keras.v1.networks import V1Networks, build_networks

NORM_BUFFERS = (".running_mean", ".running_var", ".num_batches_tracked")
AUTHORS_FILES = {"generator": "{step}-G.ckpt", "discriminator": "{step}-D.ckpt"}
V1_CHECKPOINT = "a StarGAN checkpoint ({step}-G.ckpt / {step}-D.ckpt of yunjey/stargan's solver.py)"


def read_state_dict(path: str | Path, network: str) -> dict[str, np.ndarray]:
    """{state-dict key: float32 array} of one authors' file, without the norms' running buffers."""
    path = Path(path)
    hint = f"Use the authors' {AUTHORS_FILES[network]} for the {network}."
    contents = load_torch_file(path, error=ConversionError, hint=hint)
    if not isinstance(contents, dict) or not contents:
        raise ConversionError(f"{path} holds a {type(contents).__name__}, not the state dict of a StarGAN "
                              f"{network}. {hint}")
    state = {}
    for key, value in contents.items():
        key = str(key)
        if not is_tensor(value):
            raise ConversionError(f"{path}: {key} is a {type(value).__name__}, not a tensor; this is not a StarGAN "
                                  f"state dict. {hint}")
        key = key[len("module."):] if key.startswith("module.") else key  # saved from nn.DataParallel
        if not key.endswith(NORM_BUFFERS):
            state[key] = value  # converted once its shape fits
    return state


def _main_convs(state: dict) -> list[int]:
    """Sorted i of the 4-D `main.{i}.weight` tensors (G's and D's convs in their Sequential)."""
    found = []
    for key, value in state.items():
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == "main" and parts[1].isdigit() and parts[2] == "weight" and value.ndim == 4:
            found.append(int(parts[1]))
    return sorted(found)


def describe_checkpoint(states: dict) -> dict:
    """What the tensors say about the v1 config (each entry only when it can be read off)."""
    g, d = states.get("generator", {}), states.get("discriminator", {})
    facts = {}
    if "main.0.weight" in g:
        facts["g_conv_dim"], in_channels = g["main.0.weight"].shape[:2]
        facts["c_dim"] = in_channels - 3
        blocks = {int(k.split(".")[1]) for k in g if k.endswith(".main.0.weight") and k.split(".")[1].isdigit()}
        facts["g_repeat_num"] = len(blocks)
    convs = _main_convs(d)
    if convs:
        facts["d_repeat_num"] = len(convs)
        facts["d_conv_dim"] = d[f"main.{convs[0]}.weight"].shape[0]
    if "conv2.weight" in d:
        facts["d_c_dim"], _, kernel, _ = d["conv2.weight"].shape
        if "d_repeat_num" in facts:
            facts["image_size"] = kernel * 2 ** facts["d_repeat_num"]
    return facts


def _hints(facts: dict, v1: ModelConfig) -> list[str]:
    """The `v1` config values that probably differ from the checkpoint, as flags."""
    hints = [f"the checkpoint has {name} {facts[name]}, the config says --{name.replace('_', '-')} "
             f"{getattr(v1, name)}"
             for name in ("c_dim", "g_conv_dim", "g_repeat_num", "d_conv_dim", "d_repeat_num", "image_size")
             if facts.get(name, getattr(v1, name)) != getattr(v1, name)]
    if facts.get("d_c_dim", v1.c_dim) != v1.c_dim and facts.get("c_dim") == v1.c_dim:
        hints.append(f"the discriminator has {facts['d_c_dim']} class outputs, the config says --c-dim {v1.c_dim}")
    return hints


def read_checkpoints(networks: V1Networks, v1: ModelConfig, generator_path, discriminator_path=None) -> dict:
    """{network: state} of the authors' files for `networks`, every tensor checked against them first."""
    paths = {"generator": generator_path, "discriminator": discriminator_path}
    states, sources = {}, {}
    for name, _network in networks.items():
        if paths[name] is None:
            raise ConversionError(f"the {name}'s weights are needed: pass the authors' {AUTHORS_FILES[name]}.")
        states[name] = read_state_dict(paths[name], name)
        sources[name] = paths[name]
    check_state_dicts(states, networks, sources, lambda found: _hints(describe_checkpoint(found), v1), V1_CHECKPOINT)
    return states


def load_checked(networks: V1Networks, config: Config, generator_path, discriminator_path=None) -> None:
    """Assign the authors' files to `networks` (G, and D when it is built), all tensors checked before any is set."""
    states = read_checkpoints(networks, config.model, generator_path, discriminator_path)
    for name, network in networks.items():
        assign_state_dict(torch_named_variables(network), states[name])


def convert_checkpoint(generator_path: str | Path, config: Config, output_dir: str | Path,
                       discriminator_path: str | Path | None = None, log=print, overwrite: bool = False) -> Path:
    """Convert the authors' G (and optionally D) into a model directory carrying `config` (model_family v1)."""
    from stargan_keras.core.model_dir import check_model_target, save_networks

    if not isinstance(config, Config):
        raise ConversionError(f"converting a StarGAN v1 checkpoint needs a v1 config (model_family v1); this one "
                              f"is {config.model_family!r}: pass --config v1_celeba or another v1 preset.")
    config.validate()
    check_model_target(output_dir, overwrite)
    networks = build_networks(config.model, with_discriminator=discriminator_path is not None)
    log(f"Reading {generator_path}" + (f" and {discriminator_path}" if discriminator_path else ""))
    load_checked(networks, config, generator_path, discriminator_path)
    for name, network in networks.items():
        count = sum(int(np.prod(v.shape)) for v in torch_named_variables(network).values())
        log(f"  {name}: {count:,} parameters")
    output = save_networks(output_dir, config, networks, overwrite=overwrite)
    log(f"Wrote {output}")
    return output


__all__ = ["ConversionError", "convert_checkpoint", "load_checked", "read_checkpoints"]
