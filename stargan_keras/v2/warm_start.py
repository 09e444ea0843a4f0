"""Starting a new training run from other weights: the authors' training state, or a model to fine-tune.

`train --init-from PATH` takes one of
- `{step}_nets.ckpt` of the authors' training (clovaai/stargan-v2 `Solver._save_checkpoint`):
  G, F, E, D from it, their EMA copies from `{step}_nets_ema.ckpt` beside it, the Adam
  moments from `{step}_optims.ckpt` when it is there; the run continues at `step`.
- `{step}_nets_ema.ckpt` (the released files) or a converted model directory: G, F, E
  and their EMA copies from it, D from `--discriminator-checkpoint` (an authors'
  `{step}_nets.ckpt`) or from a model directory that holds one, else freshly
  initialised; the run starts at step 0 (fine-tuning).
- a preset name (`stargan_v2_afhq`, `stargan_v2_celeba_hq`): its cached model directory
  (`stargan_keras.presets`, resolved by the train command), downloaded and converted on first use.
It applies to a new run only: a run directory with checkpoints of its own resumes them.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from stargan_keras.v2.convert import IGNORED_KEYS, ConversionError, check_fit, read_checkpoint
from stargan_keras.core.model_dir import is_model_directory, weights_file
from stargan_keras.core.config import ConfigError
from stargan_keras.v2.config import Config
from stargan_keras.core.layers import torch_named_variables
from stargan_keras.v2.networks import EMA_NETWORKS, open_directory
from stargan_keras.core.torch_io import assign_state_dict, is_tensor, load_torch_file, to_keras_layout, to_numpy, torch_shape

AUTHORS_FILE = re.compile(r"^(?P<step>\d+)_(?P<kind>nets|nets_ema|optims)\.ckpt$")  # `{:06d}_nets.ckpt`, ...
NETWORKS_WITH_D = EMA_NETWORKS + ("discriminator",)


@dataclasses.dataclass(frozen=True)
class WarmStart:
    """What a new run starts from (see the module docstring); `step` is where it continues."""

    source: Path
    step: int = 0
    nets_ema: Path | None = None  # the authors' EMA networks, continuing their training
    optims: Path | None = None  # the authors' optimizer states
    discriminator: Path | None = None  # an authors' `{step}_nets.ckpt` whose D is fine-tuned

    @property
    def continues_training(self) -> bool:
        return self.nets_ema is not None

    def describe(self) -> str:
        if self.continues_training:
            moments = (f"Adam moments from {self.optims}" if self.optims else
                       f"no {self.step:06d}_optims.ckpt beside it: the Adam moments start from zero")
            return (f"continuing the authors' training at step {self.step}: G, F, E, D from {self.source}, their EMA "
                    f"copies from {self.nets_ema}, {moments}")
        d = (f"D from {self.discriminator}" if self.discriminator else
             "D from the model directory" if self._model_dir_has_d() else "D freshly initialised (none was given)")
        return f"fine-tuning from {self.source}: G, F, E and their EMA copies from it, {d}; starting at step 0"

    def _model_dir_has_d(self) -> bool:
        return self.source.is_dir() and (self.source / weights_file("discriminator")).exists()


def resolve(init_from: str | Path, discriminator_checkpoint: str | Path | None = None) -> WarmStart:
    """Check `--init-from` (and `--discriminator-checkpoint`) before any work; find the authors' sibling files."""
    source = Path(init_from)
    if not source.exists():
        raise ConfigError(f"--init-from {source}: no such file or directory. Pass the authors' {{step}}_nets.ckpt "
                          "or {step}_nets_ema.ckpt, or a model directory written by stargan_keras.convert.")
    discriminator = Path(discriminator_checkpoint) if discriminator_checkpoint else None
    if discriminator is not None and not discriminator.is_file():
        raise ConfigError(f"--discriminator-checkpoint {discriminator}: no such file. Pass the authors' "
                          "{step}_nets.ckpt that holds the discriminator.")
    if source.is_dir():
        if not is_model_directory(source):
            raise ConfigError(f"--init-from {source} is a directory but not a model directory (no "
                              "generator.weights.h5): pass one written by stargan_keras.convert.")
        return WarmStart(source, discriminator=discriminator)
    match = AUTHORS_FILE.match(source.name)
    if match is None or match["kind"] == "optims":
        raise ConfigError(f"--init-from {source}: expected the authors' file names {{step}}_nets.ckpt or "
                          "{step}_nets_ema.ckpt (as their training writes them), or a model directory.")
    if match["kind"] == "nets_ema":
        return WarmStart(source, discriminator=discriminator)
    if discriminator is not None:
        raise ConfigError(f"--discriminator-checkpoint: --init-from {source.name} already holds the discriminator; "
                          "drop one of the two.")
    stem = source.name[:-len("_nets.ckpt")]
    nets_ema, optims = source.with_name(f"{stem}_nets_ema.ckpt"), source.with_name(f"{stem}_optims.ckpt")
    if not nets_ema.is_file():
        raise ConfigError(f"--init-from {source}: continuing the authors' training needs {nets_ema.name} beside it "
                          "(the EMA networks); copy it there, or pass a *_nets_ema.ckpt to fine-tune instead.")
    return WarmStart(source, int(match["step"]), nets_ema, optims if optims.is_file() else None)


def apply(model, start: WarmStart, config: Config, log=print) -> None:
    """Load `start` into a freshly built trainer (StarGANv2): weights, EMA copies, optimizer moments and step.

    Every tensor is checked against the config before any is assigned.
    """
    log(start.describe())
    if start.continues_training:
        states = model.load_authors_weights(start.source, start.nets_ema)
        if start.optims is not None:
            load_authors_optimizers(model, start.optims, states)
        model.step.assign(start.step)
        return
    if start.source.is_dir():
        loaded_config, loaded = open_directory(start.source)
        differences = loaded_config.network_differences(config, ignore=("domain_names",))
        if differences:
            raise ConfigError(f"--init-from {start.source} holds other networks than the run's: "
                              f"{'; '.join(differences)}.")
        for networks in (model.nets, model.nets_ema):
            for name, network in loaded.items():
                if getattr(networks, name, None) is not None:
                    getattr(networks, name).set_weights(network.get_weights())
    else:
        states = read_checkpoint(start.source, EMA_NETWORKS)
        for networks in (model.nets, model.nets_ema):
            _check_and_assign(networks, states, config, {name: start.source for name in states})
    if start.discriminator is not None:
        states = read_checkpoint(start.discriminator, ("discriminator",))
        _check_and_assign(model.nets, states, config, {"discriminator": start.discriminator})


def _check_and_assign(networks, states: dict, config: Config, sources: dict) -> None:
    """The networks of `networks` named in `states`: every tensor checked, then assigned."""
    present = dataclasses.replace(networks, **{n: None for n in NETWORKS_WITH_D if n not in states})
    check_fit(states, present, config.model, sources)
    for name, network in present.items():
        assign_state_dict(torch_named_variables(network), states[name])


def load_authors_optimizers(model, path: Path, states: dict) -> None:
    """The Adam moments and step counts of the authors' `{step}_optims.ckpt` into the trainer's TorchAdams.

    `torch.optim.Adam.state_dict()` numbers parameters in `module.parameters()` order, which
    is the network's state-dict order without its buffers (`states`, read from the
    `{step}_nets.ckpt` they were saved with).
    """
    contents = load_torch_file(path, error=ConversionError, hint="Use the authors' original *_optims.ckpt.")
    for name, optimizer in model.optimizers.items():
        saved = contents.get(name) if isinstance(contents, dict) else None
        if not isinstance(saved, dict) or "state" not in saved:
            raise ConversionError(f"{path} has no optimizer state for {name}: is it the authors' *_optims.ckpt?")
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)
        variables = torch_named_variables(getattr(model.nets, name))
        parameters = [key for key in states[name] if key not in IGNORED_KEYS]
        steps = set()
        for index, key in enumerate(parameters):
            entry = saved["state"].get(index)
            if entry is None:
                continue
            variable = variables[key]
            slot = optimizer._get_variable_index(variable)
            for moments, torch_key in ((optimizer._momentums, "exp_avg"), (optimizer._velocities, "exp_avg_sq")):
                value = entry.get(torch_key)
                want = torch_shape(variable.shape)
                if not is_tensor(value) or tuple(value.shape) != want:
                    raise ConversionError(f"{path}: {name} parameter {index} ({key}) has no {torch_key} of shape "
                                          f"{want}: the file was not saved with {start_name(path)}_nets.ckpt.")
                moments[slot].assign(to_keras_layout(to_numpy(value)))
            steps.add(int(float(entry["step"])))
        if len(steps) > 1:
            raise ConversionError(f"{path}: {name}'s parameters were stepped {sorted(steps)} times; expected one "
                                  "count.")
        if steps:
            optimizer.iterations.assign(steps.pop())


def start_name(path: Path) -> str:
    """`000123` of `000123_optims.ckpt`."""
    return path.name.split("_", 1)[0]
