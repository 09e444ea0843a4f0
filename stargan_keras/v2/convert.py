"""The authors' StarGAN v2 checkpoints (clovaai/stargan-v2, `core/checkpoint.py`): read, checked, converted.

Checkpoints are read with `torch.load(weights_only=True)`: a file that carries
code is refused, never run. Every tensor is checked against the architecture
the config describes before anything is written, so a wrong `--num-domains`,
`--w-hpf` or `--img-size` fails with the keys and the flag at fault instead of
leaving a half-converted directory (upstream issues #108, #177).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from stargan_keras.core.config import preset_path
from stargan_keras.v2.config import Config
from stargan_keras.v2.networks import EMA_NETWORKS
from stargan_keras.core.torch_io import ConversionError, assign_state_dict, check_state_dicts, is_tensor, load_torch_file

IGNORED_KEYS = ("hpf.filter",)  # a constant of w_hpf; absent from the released CelebA-HQ file (issue #103)


def read_checkpoint(path: str | Path, required: tuple[str, ...]) -> dict[str, dict[str, np.ndarray]]:
    """{network: {state-dict key: float32 array}} from an upstream `*_nets*.ckpt`, safely."""
    path = Path(path)
    contents = load_torch_file(path, error=ConversionError, hint="Use the authors' original *_nets_ema.ckpt.")
    if not isinstance(contents, dict):
        raise ConversionError(f"{path} holds a {type(contents).__name__}, not the upstream dict of state dicts "
                              f"({', '.join(required)}).")
    missing = [name for name in required if not isinstance(contents.get(name), dict)]
    if missing:
        raise ConversionError(f"{path} has no {', '.join(missing)} state dict (it has: "
                              f"{', '.join(map(str, contents)) or 'nothing'}). The networks G, F, E are in "
                              "*_nets_ema.ckpt and the discriminator in *_nets.ckpt.")
    states = {}
    for name in required:
        states[name] = {}
        for key, value in contents[name].items():
            if not is_tensor(value):
                raise ConversionError(f"{path}: {name}.{key} is a {type(value).__name__}, not a tensor; this is not "
                                      "a StarGAN v2 checkpoint.")
            states[name][_strip_data_parallel(str(key))] = value  # converted once its shape fits
    return states


def _strip_data_parallel(key: str) -> str:
    return key[len("module."):] if key.startswith("module.") else key


def _indices(state: dict, prefix: str, suffix: str) -> list[int]:
    """Sorted i of keys `{prefix}{i}.{...}{suffix}`."""
    found = set()
    for key in state:
        if key.startswith(prefix) and key.endswith(suffix):
            head = key[len(prefix):].split(".", 1)[0]
            if head.isdigit():
                found.add(int(head))
    return sorted(found)


def describe_checkpoint(states: dict) -> dict:
    """What the tensors say about the model config (each entry only when it can be read off)."""
    g, f, e = (states.get(n, {}) for n in EMA_NETWORKS)
    d = states.get("discriminator", {})
    facts = {}
    domains = _indices(f, "unshared.", ".weight") or _indices(e, "unshared.", ".weight")
    if domains:
        facts["num_domains"] = len(domains)
    trunk_blocks = _indices(e, "shared.", ".conv1.weight") or _indices(d, "main.", ".conv1.weight")
    if trunk_blocks:
        facts["trunk_blocks"] = len(trunk_blocks)
        facts["img_size"] = 2 ** (len(trunk_blocks) + 2)
    encode = _indices(g, "encode.", ".conv1.weight")
    if encode:
        facts["encode_blocks"] = len(encode)
        if "img_size" in facts:
            facts["hpf"] = len(encode) - 2 > int(math.log2(facts["img_size"])) - 4
    if "hpf.filter" in g and g["hpf.filter"].shape == (3, 3):
        facts["hpf"] = True
        facts["w_hpf"] = float(8.0 / g["hpf.filter"][1, 1])
    if "from_rgb.weight" in g:
        facts["base_dim"] = g["from_rgb.weight"].shape[0]
    widths = [v.shape[0] for v in e.values() if v.ndim == 4]
    if widths:
        facts["widest"] = max(widths)
    if "shared.0.weight" in f:
        facts["mapping_hidden_dim"], facts["latent_dim"] = f["shared.0.weight"].shape
    if "unshared.0.6.weight" in f:
        facts["style_dim"] = f["unshared.0.6.weight"].shape[0]
    return facts


def _hints(facts: dict, model) -> list[str]:
    """The config values that probably differ from the checkpoint, as flags."""
    hints = []
    if facts.get("num_domains", model.num_domains) != model.num_domains:
        hints.append(f"the checkpoint has {facts['num_domains']} domains, the config says "
                     f"--num-domains {model.num_domains}")
    if facts.get("img_size", model.img_size) != model.img_size:
        hints.append(f"the style encoder/discriminator has {facts['trunk_blocks']} downsampling blocks, i.e. "
                     f"{facts['img_size']} px images, the config says --img-size {model.img_size}")
    if "hpf" in facts and facts["hpf"] != (model.w_hpf > 0):
        levels = facts["encode_blocks"] - 2
        size = facts.get("img_size", model.img_size)
        kind = "w_hpf > 0 (the extra level of the CelebA-HQ generator)" if facts["hpf"] else "w_hpf = 0 (AFHQ-like)"
        hints.append(f"the generator has {levels} down/up-sampling levels at {size} px, which means {kind}, "
                     f"the config says --w-hpf {model.w_hpf:g}")
    if facts.get("base_dim", model.resolved_base_dim) != model.resolved_base_dim:
        hints.append(f"the generator's first conv has {facts['base_dim']} channels, the config gives "
                     f"{model.resolved_base_dim} (--base-dim {model.base_dim}, default 2**14 // img_size)")
    widest = min(model.max_conv_dim, model.resolved_base_dim * 2 ** (int(math.log2(model.img_size)) - 2))
    if facts.get("widest", widest) != widest:
        hints.append(f"the style encoder's widest layer has {facts['widest']} channels, the config gives {widest} "
                     f"(--max-conv-dim {model.max_conv_dim})")
    for name in ("style_dim", "latent_dim", "mapping_hidden_dim"):
        value = getattr(model, name)
        if facts.get(name, value) != value:
            hints.append(f"the checkpoint has {name} {facts[name]}, the config says --{name.replace('_', '-')} "
                         f"{value}")
    return hints


def check_fit(states: dict, networks, model, sources: dict) -> None:
    """`torch_io.check_state_dicts` of the authors' v2 networks: misfits come with the flags that likely explain
    them, read off the checkpoint (`describe_checkpoint`)."""
    check_state_dicts(states, networks, sources, lambda found: _hints(describe_checkpoint(found), model),
                      "a StarGAN v2 checkpoint (core/model.py of clovaai/stargan-v2)", IGNORED_KEYS)


def convert_checkpoint(nets_ema_path: str | Path, config: Config | str, output_dir: str | Path,
                       discriminator_path: str | Path | None = None, log=print,
                       overwrite: bool = False) -> Path:
    """Convert the authors' G, F, E (and optionally D) into a model directory carrying `config`."""
    from stargan_keras.core.model_dir import check_model_target, save_networks
    from stargan_keras.face.model_files import check_fan_source
    from stargan_keras.core.layers import torch_named_variables
    from stargan_keras.v2.networks import build_networks

    if isinstance(config, str):
        config = Config.read(preset_path(config))
    config.model.validate()
    check_model_target(output_dir, overwrite)
    check_fan_source(config, None, f"--output {output_dir}")
    log(f"Reading {nets_ema_path}")
    states = read_checkpoint(nets_ema_path, EMA_NETWORKS)
    sources = {name: nets_ema_path for name in EMA_NETWORKS}
    if discriminator_path is not None:
        log(f"Reading {discriminator_path}")
        states.update(read_checkpoint(discriminator_path, ("discriminator",)))
        sources["discriminator"] = discriminator_path
    networks = build_networks(config.model, with_discriminator=discriminator_path is not None)
    check_fit(states, networks, config.model, sources)
    facts = describe_checkpoint(states)
    if "w_hpf" in facts and not math.isclose(facts["w_hpf"], config.model.w_hpf):
        log(f"note: the checkpoint's hpf.filter was made with w_hpf {facts['w_hpf']:g}; using the config's "
            f"--w-hpf {config.model.w_hpf:g}")
    for name, network in networks.items():
        variables = torch_named_variables(network)
        assign_state_dict(variables, states[name])
        count = sum(int(np.prod(v.shape)) for v in variables.values())
        log(f"  {name}: {len(variables)} tensors, {count:,} parameters")
    if config.model.w_hpf > 0:
        from stargan_keras.face.fan import load_fan_checkpoint

        log(f"Reading {config.model.fan_checkpoint} (the face-landmark network behind the generator's face masks)")
        networks.fan = load_fan_checkpoint(config.model.fan_checkpoint)
    output = save_networks(output_dir, config, networks, overwrite=overwrite)
    log(f"Wrote {output} (load it with stargan_keras.load({str(output)!r}))")
    return output
