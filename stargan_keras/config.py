"""The one typed configuration of a run: StarGAN v2 (the `model` section) or, with
`model_family: v1`, StarGAN v1 (the `v1` section); `data` and `train` serve both.

Defaults are the paper's (and the authors' release); YAML presets in `configs/`
override them, and command-line flags override the presets. Every field of every
section is a flag: `model.img_size` is `--img-size`, `train.lambda_ds` is
`--lambda-ds`, so field names are unique across sections.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import UserError


class ConfigError(UserError, ValueError):
    """A configuration value, key or flag that cannot be used; the message says which."""


def option(default=dataclasses.MISSING, help: str = "", *, default_factory=dataclasses.MISSING):
    """A config field with the one-line help its command-line flag shows."""
    return field(default=default, default_factory=default_factory, metadata={"help": help})


@dataclass
class ModelConfig:
    """The four networks' sizes (the paper's Appendix A and the authors' `core/model.py`)."""

    img_size: int = option(256, "image height and width in pixels: a power of two from 16 to 512")
    num_domains: int = option(2, "number of domains (taken from the data set when not given)")
    domain_names: list[str] = option(help="comma-separated domain names, in label order",
                                     default_factory=list)
    latent_dim: int = option(16, "size of the latent code z")
    style_dim: int = option(64, "size of the style code s")
    mapping_hidden_dim: int = option(512, "width of the mapping network F")
    w_hpf: float = option(1.0, "weight of the high-pass face skips (0: off, as for AFHQ)")
    fan_checkpoint: str = option("", "w_hpf > 0: the authors' wing.ckpt (the face-landmark network behind the "
                                     "skips' masks), converted into the run or model directory")
    base_dim: int | None = option(None, "channels of the first conv (unset: the paper's 2**14 // img_size)")
    max_conv_dim: int = option(512, "channel cap of every network")

    @property
    def resolved_base_dim(self) -> int:
        return self.first_width(self.img_size, self.base_dim)

    @staticmethod
    def first_width(img_size: int, base_dim: int | None = None) -> int:
        """Channels of the first conv of G, E and D: base_dim, or the authors' 2**14 // img_size."""
        return base_dim if base_dim is not None else 2**14 // img_size

    @property
    def resolved_domain_names(self) -> list[str]:
        return list(self.domain_names) or [f"domain_{i}" for i in range(self.num_domains)]

    def validate(self) -> None:
        size = self.img_size
        if size < 16 or size > 512 or size & (size - 1):
            raise ConfigError(f"--img-size {size}: must be a power of two from 16 to 512.")
        if self.num_domains < 1:
            raise ConfigError(f"--num-domains {self.num_domains}: must be at least 1.")
        if self.domain_names and len(self.domain_names) != self.num_domains:
            raise ConfigError(f"--domain-names has {len(self.domain_names)} names "
                              f"{self.domain_names} but --num-domains is {self.num_domains}.")
        if self.w_hpf < 0:
            raise ConfigError(f"--w-hpf {self.w_hpf}: must be 0 (off) or positive.")
        for name in ("latent_dim", "style_dim", "mapping_hidden_dim", "max_conv_dim"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive.")
        if self.resolved_base_dim < 1:
            raise ConfigError(f"--base-dim {self.base_dim}: must be positive.")


@dataclass
class DataConfig:
    """Where the images come from and how they are augmented (the authors' `core/data_loader.py`)."""

    dataset: str = option("shapes", "shapes | afhq | afhq_v2 | celeba_hq | a folder ROOT with train/ and val/ "
                                     "domain folders; v1: shapes | celeba | rafd | both | a folder of class folders")
    data_dir: str = option("data", "where afhq, afhq_v2 and celeba_hq are found or downloaded")
    rrc_prob: float = option(0.5, "probability of the random-resized crop")
    shapes_train_per_domain: int = option(2000, "shapes: train images per domain")
    shapes_val_per_domain: int = option(100, "shapes: val images per domain")
    shapes_seed: int = option(0, "shapes: the synthetic set's own seed (the same images whatever --seed is)")
    eval_batch_size: int = option(32, "batch size of sampling and evaluation")


@dataclass
class TrainConfig:
    """The training algorithm's settings (the paper's Section 4 and the authors' `core/solver.py`)."""

    batch_size: int = option(8, "global batch size, split across replicas")
    total_iters: int = option(100_000, "training iterations")
    lr: float = option(1e-4, "learning rate of G, E and D")
    f_lr: float = option(1e-6, "learning rate of the mapping network F")
    beta_1: float = option(0.0, "Adam beta_1")
    beta_2: float = option(0.99, "Adam beta_2")
    epsilon: float = option(1e-8, "Adam epsilon")
    weight_decay: float = option(1e-4, "PyTorch-style coupled L2, added to the gradient")
    lambda_reg: float = option(1.0, "weight of the R1 penalty")
    lambda_sty: float = option(1.0, "weight of the style reconstruction loss")
    lambda_ds: float = option(1.0, "initial weight of the diversity-sensitive loss")
    lambda_cyc: float = option(1.0, "weight of the cycle-consistency loss")
    ds_iter: int = option(100_000, "iterations over which lambda_ds decays linearly to 0")
    ema_beta: float = option(0.999, "decay of the EMA copies of G, F and E")
    seed: int = option(777, "seed of the initial weights and of every batch")
    strategy: str = option("auto", "auto | mirrored | multi_worker (from TF_CONFIG) | tpu | default")
    precision: str = option("float32", "float32 | mixed_bfloat16 | mixed_float16")
    jit_compile: bool = option(False, "compile the training step with XLA (true/false)")
    save_every: int = option(10_000, "checkpoint every N steps (and at the end)")
    keep_checkpoints: int = option(3, "how many checkpoints to keep")
    sample_every: int = option(5_000, "sample grids every N steps")
    log_every: int = option(10, "TensorBoard scalars every N steps")
    profile_steps: str = option("", "FIRST,LAST: profile that window of steps into TensorBoard")

    def validate(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"--strategy {self.strategy!r}: choose one of {', '.join(STRATEGIES)}.")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}.")
        for name in ("batch_size", "total_iters", "save_every", "sample_every", "log_every",
                     "keep_checkpoints", "ds_iter"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be at least 1.")


STRATEGIES = ("auto", "mirrored", "multi_worker", "tpu", "default")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
MODEL_FAMILIES = ("v2", "v1")
V1_LABEL_TYPES = ("attributes", "categorical")
V1_LR_DECAYS = ("linear", "released", "none")
CELEBA_DEFAULT_ATTRS = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
CELEBA_HAIR_COLOURS = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair"]  # the authors' exclusive attributes
SHAPES_DOMAINS = 3  # circle, square, triangle: the synthetic set's domains (data/shapes.py)
JOINT_MASK_DIM = 2  # joint mode: G's label ends with a one-hot mask saying which dataset's labels are known


@dataclass(frozen=True)
class LabelSlice:
    """The labels of one dataset inside G's label vector and D's class logits: columns [start, stop)."""

    start: int
    stop: int
    label_type: str


@dataclass
class V1Config:
    """StarGAN v1 (Choi et al., CVPR 2018): its networks, loss weights and Adam settings.

    Defaults are the paper's and the authors' `main.py` (yunjey/stargan), whose flag
    names the fields keep. The shared `train` section still sets the batch, the
    iterations, the seed, the strategy and the precision.
    """

    image_size: int = option(128, "v1: image height and width in pixels, divisible by 2**d_repeat_num")
    c_dim: int = option(5, "v1: width of the label vector (attributes or classes)")
    selected_attrs: list[str] = option(help="v1: the label vector's names, in order (CelebA attributes or "
                                            "class names)", default_factory=lambda: list(CELEBA_DEFAULT_ATTRS))
    label_type: str = option("attributes", "v1: attributes (independent binary, BCE as for CelebA) | "
                                           "categorical (one-hot classes, softmax cross-entropy as for RaFD)")
    c2_dim: int = option(0, "v1: joint training on two datasets (--dataset both, the paper's Section 3.2): classes of "
                            "the second (RaFD's 8 expressions), categorical, after the c_dim labels of the first; "
                            "G then takes c_dim + c2_dim + 2 labels (the mask vector last); 0: one dataset")
    exclusive_attrs: list[str] = option(help="v1: attributes of which exactly one is on: a test-time target sets one "
                                             "and clears the others, as the authors do for hair colours",
                                        default_factory=lambda: list(CELEBA_HAIR_COLOURS))
    celeba_crop_size: int = option(178, "v1: CelebA images are centre-cropped to this square, then resized")
    rafd_crop_size: int = option(256, "v1: RaFD and other folder images are centre-cropped to this square (or "
                                      "their shorter side), then resized; 0: no crop")
    g_conv_dim: int = option(64, "v1: channels of G's first conv")
    d_conv_dim: int = option(64, "v1: channels of D's first conv")
    g_repeat_num: int = option(6, "v1: residual blocks of G")
    d_repeat_num: int = option(6, "v1: stride-2 convs of D")
    lambda_cls: float = option(1.0, "v1: weight of the domain classification loss")
    lambda_rec: float = option(10.0, "v1: weight of the reconstruction loss")
    lambda_gp: float = option(10.0, "v1: weight of the gradient penalty")
    n_critic: int = option(5, "v1: one G update every n_critic D updates")
    g_lr: float = option(1e-4, "v1: learning rate of G")
    d_lr: float = option(1e-4, "v1: learning rate of D")
    beta1: float = option(0.5, "v1: Adam beta_1 of G and D")
    beta2: float = option(0.999, "v1: Adam beta_2 of G and D")
    lr_decay: str = option("linear", "v1: linear (the paper: to 0 over the last num_iters_decay iterations) | "
                                     "released (the authors' code: lr0/num_iters_decay less every lr_update_step "
                                     "iterations there, 0.1% in all by default) | none")
    num_iters_decay: int = option(100_000, "v1: the last iterations, over which the learning rates decay")
    lr_update_step: int = option(1000, "v1: with --lr-decay released, iterations between two decrements")

    # The fields that shape the networks or give their labels meaning: a run's checkpoints fit no others.
    NETWORK_FIELDS: typing.ClassVar[tuple[str, ...]] = (
        "image_size", "c_dim", "c2_dim", "selected_attrs", "label_type", "g_conv_dim", "d_conv_dim", "g_repeat_num",
        "d_repeat_num")

    @property
    def label_dim(self) -> int:
        """Width of G's label input: c_dim, or in joint mode c_dim + c2_dim and the mask vector."""
        return self.num_classes + (JOINT_MASK_DIM if self.c2_dim else 0)

    @property
    def num_classes(self) -> int:
        """Outputs of D's classification head: every dataset's labels (the mask is G's only)."""
        return self.c_dim + self.c2_dim

    @property
    def label_slices(self) -> list[LabelSlice]:
        """Each dataset's columns: [0, c_dim) of label_type, then in joint mode [c_dim, c_dim + c2_dim),
        categorical; dataset j's mask bit is column num_classes + j of G's label."""
        slices = [LabelSlice(0, self.c_dim, self.label_type)]
        if self.c2_dim:
            slices.append(LabelSlice(self.c_dim, self.num_classes, "categorical"))
        return slices

    def validate(self) -> None:
        for name in ("image_size", "c_dim", "g_conv_dim", "d_conv_dim", "g_repeat_num", "d_repeat_num",
                     "n_critic", "num_iters_decay", "lr_update_step"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be at least 1.")
        for name in ("c2_dim", "celeba_crop_size", "rafd_crop_size"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be 0 or more.")
        if self.image_size % 2 ** self.d_repeat_num:
            raise ConfigError(f"--image-size {self.image_size}: must be divisible by 2**d_repeat_num = "
                              f"{2 ** self.d_repeat_num} (D's classification head spans the last feature map).")
        if self.selected_attrs and len(self.selected_attrs) != self.num_classes:
            wanted = f"--c-dim + --c2-dim is {self.c_dim} + {self.c2_dim}" if self.c2_dim else f"--c-dim is {self.c_dim}"
            raise ConfigError(f"--selected-attrs has {len(self.selected_attrs)} names {self.selected_attrs} "
                              f"but {wanted}.")
        if self.label_type not in V1_LABEL_TYPES:
            raise ConfigError(f"--label-type {self.label_type!r}: choose one of {', '.join(V1_LABEL_TYPES)}.")
        if self.lr_decay not in V1_LR_DECAYS:
            raise ConfigError(f"--lr-decay {self.lr_decay!r}: choose one of {', '.join(V1_LR_DECAYS)}.")


@dataclass
class Config:
    """A whole run: the networks, the data, the training, and where it all goes."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    v1: V1Config = field(default_factory=V1Config)
    run_dir: str = option("runs/shapes", "run directory: config, checkpoints, samples, logs; re-use it to resume")
    model_family: str = option("v2", "v2 (StarGAN v2: the model section) | v1 (StarGAN, Choi et al. 2018: the "
                                     "v1 section); --model for short")

    def validate(self) -> "Config":
        if self.model_family not in MODEL_FAMILIES:
            raise ConfigError(f"--model-family {self.model_family!r}: choose one of {', '.join(MODEL_FAMILIES)}.")
        (self.v1 if self.model_family == "v1" else self.model).validate()
        self.train.validate()
        self.check_memory()
        return self

    def check_memory(self) -> None:
        """Refuse sizes whose arrays alone cannot fit in this machine's memory, before anything is allocated."""
        from .safe_files import check_memory

        pixels = (self.v1.image_size if self.model_family == "v1" else self.model.img_size) ** 2 * 3
        batch = max(self.train.batch_size, self.data.eval_batch_size)
        check_memory(batch * pixels * 4, f"--batch-size {self.train.batch_size} / --eval-batch-size "
                                         f"{self.data.eval_batch_size}")
        if self.data.dataset == "shapes":
            images = (self.data.shapes_train_per_domain + self.data.shapes_val_per_domain) * SHAPES_DOMAINS
            check_memory(images * pixels, f"--shapes-train-per-domain {self.data.shapes_train_per_domain} / "
                                          f"--shapes-val-per-domain {self.data.shapes_val_per_domain}")

    def to_dict(self) -> dict:
        """Every section but the other family's networks (`model` for v1, `v1` for v2)."""
        unused = "model" if self.model_family == "v1" else "v1"
        return {key: value for key, value in dataclasses.asdict(self).items() if key != unused}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> None:
        """Write the effective config atomically (a crash never leaves half a file), never through a link."""
        from .safe_files import write_atomic

        write_atomic(path, self.to_yaml())

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "Config":
        return _merge(cls(), data or {}, source)

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        """Read a YAML config of at most MAX_CONFIG_BYTES, UTF-8, without aliases and at most MAX_YAML_DEPTH deep."""
        from .safe_files import UnsafeFileError, read_small_file

        path = Path(path)
        try:
            text = read_small_file(path, MAX_CONFIG_BYTES, "config file").decode("utf-8")
            data = yaml.load(text, Loader=_PlainLoader)
        except UnsafeFileError as err:
            raise ConfigError(str(err)) from None
        except UnicodeDecodeError as err:
            raise ConfigError(f"config file {path} is not UTF-8 text (byte {err.start}); save it as UTF-8.") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
        return cls.from_dict(data, source=str(path))

    def replace(self, **overrides) -> "Config":
        """A copy with flat overrides (`img_size=64`, `lambda_ds=2.0`, `run_dir=...`)."""
        return apply_overrides(dataclasses.replace(self), overrides)


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


SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig, "v1": V1Config}
TOP_LEVEL = ("run_dir", "model_family")  # fields of Config itself, outside the sections


def _merge(config: Config, data: dict, source: str) -> Config:
    """Copy a nested dict onto a config; unknown keys fail with the closest valid name."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections {list(SECTIONS)}, got {type(data).__name__}.")
    top_keys = list(SECTIONS) + list(TOP_LEVEL)
    sections = {}
    for key, value in data.items():
        if key not in top_keys:
            raise ConfigError(f"{source}: unknown key {key!r}{_did_you_mean(key, top_keys)}")
        if key in TOP_LEVEL:
            continue
        cls = SECTIONS[key]
        names = [f.name for f in dataclasses.fields(cls)]
        current = dataclasses.asdict(getattr(config, key))
        if not isinstance(value, (dict, type(None))):
            raise ConfigError(f"{source}: {key} must be a section of keys such as {names[0]}: ..., not {value!r:.60}.")
        for sub_key, sub_value in (value or {}).items():
            if sub_key not in names:
                raise ConfigError(f"{source}: unknown key {key}.{sub_key}{_did_you_mean(sub_key, names)}")
            current[sub_key] = _coerce(cls, sub_key, sub_value, f"{source}: {key}.{sub_key}")
        sections[key] = cls(**current)
    config = dataclasses.replace(config, **sections)
    for key in TOP_LEVEL:
        if key in data:
            setattr(config, key, _coerce(Config, key, data[key], f"{source}: {key}"))
    return config


def _did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(choices)}."


def _field_types(cls) -> dict:
    return typing.get_type_hints(cls)


def _coerce(cls, name: str, value, where: str):
    """Check a YAML or flag value against the dataclass field type."""
    hint = _field_types(cls)[name]
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


def flat_fields() -> dict[str, tuple[str | None, type]]:
    """Map each flat field name to (section, dataclass); `run_dir` and `model_family` have no section."""
    result: dict[str, tuple[str | None, type]] = {name: (None, Config) for name in TOP_LEVEL}
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            assert f.name not in result, f"duplicate config field {f.name}"
            result[f.name] = (section, cls)
    return result


def apply_overrides(config: Config, overrides: dict) -> Config:
    """Apply flat `name=value` overrides, each checked and coerced."""
    fields_by_name = flat_fields()
    sections = {name: dataclasses.replace(getattr(config, name)) for name in SECTIONS}
    top = {name: getattr(config, name) for name in TOP_LEVEL}
    for name, value in overrides.items():
        if name not in fields_by_name:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"unknown option {flag}{_did_you_mean(name, list(fields_by_name))}")
        section, cls = fields_by_name[name]
        coerced = _coerce(cls, name, value, "--" + name.replace("_", "-"))
        if section is None:
            top[name] = coerced
        else:
            setattr(sections[section], name, coerced)
    return Config(**top, **sections)


def network_differences(saved: Config, wanted: Config, ignore=()) -> list[str]:
    """The model fields (as flags) whose values differ: a checkpoint of one cannot be loaded into the other."""
    if saved.model_family != wanted.model_family:
        return [f"--model {wanted.model_family} (run: {saved.model_family})"]
    if wanted.model_family == "v1":
        pairs = [(name, getattr(saved.v1, name), getattr(wanted.v1, name)) for name in V1Config.NETWORK_FIELDS]
        return [f"--{name.replace('_', '-')} (run: {old}, requested: {new})" for name, old, new in pairs
                if name not in ignore and old != new]
    diffs = []
    for f in dataclasses.fields(saved.model):
        if f.name in ignore or f.name == "fan_checkpoint":  # where the FAN came from: the run keeps its own copy
            continue
        old, new = getattr(saved.model, f.name), getattr(wanted.model, f.name)
        if f.name == "base_dim":
            old, new = saved.model.resolved_base_dim, wanted.model.resolved_base_dim
        if old != new:
            diffs.append(f"--{f.name.replace('_', '-')} (run: {old}, requested: {new})")
    return diffs


def presets_dir() -> Path:
    """The YAML presets: `configs/` of the source tree, or its installed copy `stargan_keras/configs/`."""
    package = Path(__file__).resolve().parent
    candidates = [package.parent / "configs", package / "configs"]
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.glob("*.yaml")):
            return candidate
    return candidates[0]


def preset_names() -> list[str]:
    return sorted(p.stem for p in presets_dir().glob("*.yaml"))


def load_config(name_or_path: str) -> Config:
    """A preset by name (`afhq`, `celeba_hq`, `shapes`) or a YAML file path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return Config.load(path)
    preset = presets_dir() / f"{name_or_path}.yaml"
    if not preset.exists():
        names = preset_names()
        raise ConfigError(f"--config {name_or_path!r} is neither a YAML file nor a preset"
                          f"{_did_you_mean(name_or_path, names)} (presets: {', '.join(names)})")
    return Config.load(preset)


FLAG_ALIASES = {"model_family": ("--model",)}  # shorter flags for some fields, beside their own


def add_config_flags(parser: argparse.ArgumentParser, only: typing.Iterable[str] | None = None) -> None:
    """One `--flag` per config field (all of them, or those named in `only`), default None = unset."""
    wanted = set(only) if only is not None else None
    group = parser.add_argument_group(
        "configuration", "Each flag overrides the preset (--config, or the --dataset's own). The defaults shown "
        "are the paper's, which a preset may change.")
    for name, (section, cls) in flat_fields().items():
        if wanted is not None and name not in wanted:
            continue
        spec = next(f for f in dataclasses.fields(cls) if f.name == name)
        default = spec.default_factory() if spec.default is dataclasses.MISSING else spec.default
        key = name if section is None else f"{section}.{name}"
        group.add_argument(*FLAG_ALIASES.get(name, ()), "--" + name.replace("_", "-"), dest=name, default=None,
                           metavar="VALUE",
                           help=f"{spec.metadata['help']} [{key}; default {default!r}]".replace("%", "%%"))


def overrides_from_args(args: argparse.Namespace) -> dict:
    names = flat_fields()
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


class ConfigArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose unknown-flag error names the closest valid flag."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        if "unrecognized arguments" in message:
            unknown = message.split(":", 1)[1].split()
            known = [opt for action in self._actions for opt in action.option_strings]
            hints = []
            for flag in unknown:
                if flag.startswith("--"):
                    close = difflib.get_close_matches(flag.split("=")[0], known, n=1, cutoff=0.5)
                    if close:
                        hints.append(f"{flag}: did you mean {close[0]}?")
            if hints:
                message = f"{message} ({'; '.join(hints)})"
        super().error(message)
