"""The configuration machinery every model family shares: typed sections, YAML, flags.

A family's configuration is one `RunConfig` subclass (`stargan_keras.v2.config.Config`,
`stargan_keras.v1.config.Config`) with three sections: `model` (its networks), `data` and
`train` (the session's settings of `SessionConfig` plus the family's own optimisation
fields), and `run_dir`. Defaults are the papers' (and the authors' releases); YAML presets
in `configs/` override them, and command-line flags override the presets. Every field of
every section is a flag: `model.img_size` is `--img-size`, `train.lambda_ds` is
`--lambda-ds`, so field names are unique within a family.

A YAML file says its family with `model_family`; the registry (`stargan_keras.families`) maps
that name to the config class. This module knows no family.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from stargan_keras.core.errors import UserError

FAMILY_KEY = "model_family"  # the YAML key, and the flag (`--model-family`, `--model`), that choose the family


class ConfigError(UserError, ValueError):
    """A configuration value, key or flag that cannot be used; the message says which."""


def option(default=dataclasses.MISSING, help: str = "", *, default_factory=dataclasses.MISSING):
    """A config field with the one-line help its command-line flag shows."""
    return field(default=default, default_factory=default_factory, metadata={"help": help})


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_at_least(section, names, minimum: int) -> None:
    """Each named field of `section` is at least `minimum`, or a ConfigError naming its flag."""
    for name in names:
        if getattr(section, name) < minimum:
            raise ConfigError(f"{flag(name)} {getattr(section, name)}: must be at least {minimum}.")


def check_choice(value: str, name: str, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{flag(name)} {value!r}: choose one of {', '.join(choices)}.")


SHAPES_DOMAINS = 3  # circle, square, triangle: the synthetic set's domains (data/shapes.py)
STRATEGIES = ("auto", "mirrored", "multi_worker", "tpu", "default")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
CONV_FORMS = ("auto", "cpu", "keras")  # `core.layers.Conv2D`'s forms; `distribute.resolve_conv_forms` decides auto


@dataclass
class DataConfig:
    """Where the images come from (the authors' data loaders); a family may add fields."""

    dataset: str = option("shapes", "shapes | afhq | afhq_v2 | celeba_hq | a folder ROOT with train/ and val/ "
                                     "domain folders")
    data_dir: str = option("data", "where the named datasets are found or downloaded")
    shapes_train_per_domain: int = option(2000, "shapes: train images per domain")
    shapes_val_per_domain: int = option(100, "shapes: val images per domain")
    shapes_seed: int = option(0, "shapes: the synthetic set's own seed (the same images whatever --seed is)")
    eval_batch_size: int = option(32, "batch size of sampling and evaluation")

    def validate(self) -> None:
        check_at_least(self, ("shapes_train_per_domain", "shapes_val_per_domain", "eval_batch_size"), 1)


@dataclass
class SessionConfig:
    """The training session's settings, the same for every family (`core.session`)."""

    batch_size: int = option(8, "global batch size, split across replicas")
    total_iters: int = option(100_000, "training iterations")
    seed: int = option(777, "seed of the initial weights and of every batch")
    strategy: str = option("auto", "auto | mirrored | multi_worker (from TF_CONFIG) | tpu | default")
    precision: str = option("float32", "float32 | mixed_bfloat16 | mixed_float16")
    jit_compile: bool = option(False, "compile the training step with XLA (true/false)")
    conv_forms: str = option("auto", "auto | cpu | keras: the convolutions' CPU-measured forms (folded resampling, "
                                     "small maps as one matrix product, stride-1 gradients as forward "
                                     "convolutions) or Keras' own in the authors' op order; auto: cpu where every "
                                     "device of the strategy is a CPU")
    tf32: bool = option(False, "let float32 convolutions and matrix products run in TF32 on Ampere and later GPUs "
                               "(true/false; false keeps the authors' float32 arithmetic)")
    save_every: int = option(10_000, "checkpoint every N steps (and at the end)")
    keep_checkpoints: int = option(3, "how many checkpoints to keep")
    sample_every: int = option(5_000, "sample grids every N steps and at the end (0: none)")
    log_every: int = option(10, "TensorBoard scalars every N steps")
    profile_steps: str = option("", "FIRST,LAST: profile that window of steps into TensorBoard")

    def validate(self) -> None:
        check_choice(self.strategy, "strategy", STRATEGIES)
        check_choice(self.precision, "precision", PRECISIONS)
        check_choice(self.conv_forms, "conv_forms", CONV_FORMS)
        check_at_least(self, ("batch_size", "total_iters", "save_every", "log_every", "keep_checkpoints"), 1)
        check_at_least(self, ("sample_every",), 0)


@dataclass
class RunConfig:
    """A whole run of one family: `model`, `data` and `train` sections (declared by the family's subclass) and
    the run directory. `FAMILY` is the registry's name of the family; `NETWORK_FIELDS` the `model` fields that
    shape the networks (a checkpoint fits no other values)."""

    FAMILY: typing.ClassVar[str] = ""
    IGNORED_LEGACY_KEYS: typing.ClassVar[dict[str, tuple[str, ...]]] = {}

    run_dir: str = option("runs/shapes", "run directory: config, checkpoints, samples, logs; re-use it to resume")

    @property
    def model_family(self) -> str:
        return self.FAMILY

    @classmethod
    def sections(cls) -> dict[str, type]:
        """{section name: dataclass}, in YAML order."""
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in dataclasses.fields(cls) if dataclasses.is_dataclass(hints[f.name])}

    @classmethod
    def top_level(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.name not in cls.sections())

    @property
    def image_size(self) -> int:
        """The networks' image height and width (the family's field of `model`)."""
        raise NotImplementedError

    def validate(self) -> "RunConfig":
        for name in self.sections():
            getattr(self, name).validate()
        self.check_memory()
        return self

    def check_memory(self) -> None:
        """Refuse sizes whose arrays alone cannot fit in this machine's memory, before anything is allocated."""
        from stargan_keras.core.safe_files import check_memory

        pixels = self.image_size ** 2 * 3
        batch = max(self.train.batch_size, self.data.eval_batch_size)
        check_memory(batch * pixels * 4, f"--batch-size {self.train.batch_size} / --eval-batch-size "
                                         f"{self.data.eval_batch_size}")
        if self.data.dataset == "shapes":
            images = (self.data.shapes_train_per_domain + self.data.shapes_val_per_domain) * SHAPES_DOMAINS
            check_memory(images * pixels, f"--shapes-train-per-domain {self.data.shapes_train_per_domain} / "
                                          f"--shapes-val-per-domain {self.data.shapes_val_per_domain}")

    def network_differences(self, wanted: "RunConfig", ignore=()) -> list[str]:
        """The network fields (as flags) whose values differ: a checkpoint of one cannot be loaded into the other."""
        if type(self) is not type(wanted):
            return [f"--model {wanted.FAMILY} (run: {self.FAMILY})"]
        return [f"{flag(name)} (run: {old}, requested: {new})" for name, old, new in self.network_values(wanted)
                if name not in ignore and old != new]

    def network_values(self, wanted: "RunConfig"):
        """(field, this run's value, wanted's value) of each network field."""
        return [(name, getattr(self.model, name), getattr(wanted.model, name)) for name in self.NETWORK_FIELDS]

    def to_dict(self) -> dict:
        return {FAMILY_KEY: self.FAMILY, **dataclasses.asdict(self)}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> None:
        """Write the effective config atomically (a crash never leaves half a file), never through a link."""
        from stargan_keras.core.safe_files import write_atomic

        write_atomic(path, self.to_yaml())

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "RunConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping of sections {list(cls.sections())}, got "
                              f"{type(data).__name__}.")
        family = data.get(FAMILY_KEY, cls.FAMILY)
        if family != cls.FAMILY:
            raise ConfigError(f"{source} is a {FAMILY_KEY} {family!r} configuration, not {cls.FAMILY!r}.")
        data = {key: value for key, value in cls.upgrade(dict(data)).items() if key != FAMILY_KEY}
        return _merge(cls(), data, source)

    @classmethod
    def read(cls, path: str | Path) -> "RunConfig":
        """This family's config from a YAML file."""
        return cls.from_dict(read_yaml(path) or {}, str(path))

    @classmethod
    def upgrade(cls, data: dict) -> dict:
        """A config written by an earlier version, in today's layout (the family overrides this)."""
        return data

    def replace(self, **overrides) -> "RunConfig":
        """A copy with flat overrides (`img_size=64`, `lambda_ds=2.0`, `run_dir=...`)."""
        return apply_overrides(self, overrides)

    @classmethod
    def flat_fields(cls) -> dict[str, tuple[str | None, type]]:
        """Each flat field name -> (section, dataclass); top-level fields (`run_dir`) have no section."""
        result: dict[str, tuple[str | None, type]] = {name: (None, cls) for name in cls.top_level()}
        for section, section_cls in cls.sections().items():
            for f in dataclasses.fields(section_cls):
                assert f.name not in result, f"duplicate config field {f.name} in {cls.__name__}"
                result[f.name] = (section, section_cls)
        return result


def _merge(config: RunConfig, data: dict, source: str) -> RunConfig:
    """Copy a nested dict onto a config; unknown keys fail with the closest valid name."""
    sections_of = type(config).sections()
    top_keys = list(sections_of) + list(type(config).top_level())
    sections = {}
    for key, value in data.items():
        if key not in top_keys:
            raise ConfigError(f"{source}: unknown key {key!r}{_did_you_mean(key, top_keys)}")
        if key not in sections_of:
            continue
        cls = sections_of[key]
        names = [f.name for f in dataclasses.fields(cls)]
        current = dataclasses.asdict(getattr(config, key))
        if value is not None and not isinstance(value, dict):
            raise ConfigError(f"{source}: {key} must be a section of keys such as {names[0]}: ..., not {value!r:.60}.")
        for sub_key, sub_value in (value or {}).items():
            if sub_key not in names:
                raise ConfigError(f"{source}: unknown key {key}.{sub_key}{_did_you_mean(sub_key, names)}")
            current[sub_key] = _coerce(cls, sub_key, sub_value, f"{source}: {key}.{sub_key}")
        sections[key] = cls(**current)
    config = dataclasses.replace(config, **sections)
    for key in type(config).top_level():
        if key in data:
            setattr(config, key, _coerce(type(config), key, data[key], f"{source}: {key}"))
    return config


def _did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(choices)}."


def _coerce(cls, name: str, value, where: str):
    """Check a YAML or flag value against the dataclass field type."""
    hint = typing.get_type_hints(cls)[name]
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if value is None and type(None) in args:
        return None
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}.")
        return [str(v) for v in value]
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    try:
        if base is bool:
            if isinstance(value, str):
                lowered = value.lower()
                if lowered not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return lowered in ("true", "1", "yes")
            return bool(value)
        if base is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if base is float:
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {value!r} is not a valid {base.__name__}.") from None


def apply_overrides(config: RunConfig, overrides: dict) -> RunConfig:
    """A copy of `config` with flat `name=value` overrides, each checked and coerced."""
    cls = type(config)
    fields_by_name = cls.flat_fields()
    sections = {name: dataclasses.replace(getattr(config, name)) for name in cls.sections()}
    top = {name: getattr(config, name) for name in cls.top_level()}
    for name, value in overrides.items():
        if name not in fields_by_name:
            raise ConfigError(f"unknown option {flag(name)} for {cls.FAMILY}"
                              f"{_did_you_mean(name, list(fields_by_name))}")
        section, section_cls = fields_by_name[name]
        coerced = _coerce(section_cls, name, value, flag(name))
        if section is None:
            top[name] = coerced
        else:
            setattr(sections[section], name, coerced)
    return cls(**top, **sections)


MAX_CONFIG_BYTES = 2**20  # a config is a few hundred bytes; nothing a user writes by hand comes near
MAX_YAML_DEPTH = 16       # sections hold lists of names at most: depth 3


class _PlainLoader(yaml.SafeLoader):
    """safe_load without aliases (a few hundred bytes of nested aliases expand to billions of nodes) and
    without deep nesting (the composer recurses once per level)."""

    depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.YAMLError(f"aliases (*name) are not allowed in a config (line {mark.line + 1}); write the "
                                 "value out")
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH:
                raise yaml.YAMLError(f"nested more than {MAX_YAML_DEPTH} levels deep; a config has sections of "
                                     "values")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def read_yaml(path: str | Path) -> dict:
    """A YAML config of at most MAX_CONFIG_BYTES, UTF-8, without aliases and at most MAX_YAML_DEPTH deep."""
    from stargan_keras.core.safe_files import UnsafeFileError, read_small_file

    path = Path(path)
    try:
        text = read_small_file(path, MAX_CONFIG_BYTES, "config file").decode("utf-8")
        return yaml.load(text, Loader=_PlainLoader)
    except UnsafeFileError as err:
        raise ConfigError(str(err)) from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {err.start}); save it as UTF-8.") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None


def presets_dir() -> Path:
    """The YAML presets: `configs/` of the source tree, or its installed copy `stargan_keras/configs/`."""
    package = Path(__file__).resolve().parents[1]
    candidates = [package.parent / "configs", package / "configs"]
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.glob("*.yaml")):
            return candidate
    return candidates[0]


def preset_names() -> list[str]:
    return sorted(p.stem for p in presets_dir().glob("*.yaml"))


def preset_path(name_or_path: str) -> Path:
    """The YAML file of a preset name (`afhq`, `v1_celeba`, ...) or of a path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    preset = presets_dir() / f"{name_or_path}.yaml"
    if not preset.exists():
        names = preset_names()
        raise ConfigError(f"--config {name_or_path!r} is neither a YAML file nor a preset"
                          f"{_did_you_mean(name_or_path, names)} (presets: {', '.join(names)})")
    return preset


FLAG_ALIASES = {FAMILY_KEY: ("--model",)}  # shorter flags for some fields, beside their own


def add_config_flags(parser: argparse.ArgumentParser, config_class: type[RunConfig],
                     only: typing.Iterable[str] | None = None) -> None:
    """One `--flag` per field of `config_class` (all of them, or those named in `only`), default None = unset."""
    wanted = set(only) if only is not None else None
    group = parser.add_argument_group(
        "configuration", "Each flag overrides the preset (--config, or the --dataset's own). The defaults shown "
        "are the paper's, which a preset may change.")
    for name, (section, cls) in config_class.flat_fields().items():
        if wanted is not None and name not in wanted:
            continue
        spec = next(f for f in dataclasses.fields(cls) if f.name == name)
        default = spec.default_factory() if spec.default is dataclasses.MISSING else spec.default
        key = name if section is None else f"{section}.{name}"
        group.add_argument(flag(name), dest=name, default=None, metavar="VALUE",
                           help=f"{spec.metadata['help']} [{key}; default {default!r}]".replace("%", "%%"))


def family_from_argv(argv, default: str | None = None) -> str | None:
    """The family a command line asks for (`--model v1`, `--model-family=v1`), before the full parse."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument(*FLAG_ALIASES[FAMILY_KEY], flag(FAMILY_KEY), dest=FAMILY_KEY, default=default)
    known, _ = pre.parse_known_args(argv)
    return getattr(known, FAMILY_KEY)


def flag_value(argv, name: str) -> str | None:
    """The value of `--name VALUE` or `--name=VALUE` in argv, before the full parse (None without it)."""
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def overrides_from_args(args: argparse.Namespace, config_class: type[RunConfig]) -> dict:
    names = config_class.flat_fields()
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


class ConfigArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose unknown-flag error names the closest valid flag, or what `unknown_flag_hint(flag)`
    says of it (the registry's: which other family has that flag)."""

    def __init__(self, *args, unknown_flag_hint=None, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.unknown_flag_hint = unknown_flag_hint

    def error(self, message: str):
        if "unrecognized arguments" in message:
            unknown = message.split(":", 1)[1].split()
            known = [opt for action in self._actions for opt in action.option_strings]
            hints = []
            for text in unknown:
                if not text.startswith("--"):
                    continue
                other = self.unknown_flag_hint(text) if self.unknown_flag_hint else None
                close = difflib.get_close_matches(text.split("=")[0], known, n=1, cutoff=0.5)
                if other:
                    hints.append(other)
                elif close:
                    hints.append(f"{text}: did you mean {close[0]}?")
            if hints:
                message = f"{message} ({'; '.join(hints)})"
        super().error(message)
