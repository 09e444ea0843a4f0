"""StarGAN v1's configuration (Choi et al., CVPR 2018): its networks, labels, loss weights and Adam settings.

Defaults are the paper's and the authors' `main.py` (yunjey/stargan), whose flag names the
fields keep (`image_size`, `beta1`, `g_lr`, ...). YAML presets `v1_shapes`, `v1_celeba`,
`v1_rafd` and `v1_both` override them.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field

from stargan_keras.core import config as core
from stargan_keras.core.config import ConfigError, option

LABEL_TYPES = ("attributes", "categorical")
LR_DECAYS = ("linear", "released", "none")
CELEBA_DEFAULT_ATTRS = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
CELEBA_HAIR_COLOURS = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair"]  # the authors' exclusive attributes
JOINT_MASK_DIM = 2  # joint mode: G's label ends with a one-hot mask saying which dataset's labels are known


@dataclass(frozen=True)
class LabelSlice:
    """The labels of one dataset inside G's label vector and D's class logits: columns [start, stop)."""

    start: int
    stop: int
    label_type: str


@dataclass
class ModelConfig:
    """G's and D's sizes and the meaning of their labels (the authors' `model.py`)."""

    image_size: int = option(128, "image height and width in pixels, divisible by 2**d_repeat_num")
    c_dim: int = option(5, "width of the label vector (attributes or classes)")
    selected_attrs: list[str] = option(help="the label vector's names, in order (CelebA attributes or class names)",
                                       default_factory=lambda: list(CELEBA_DEFAULT_ATTRS))
    label_type: str = option("attributes", "attributes (independent binary, BCE as for CelebA) | "
                                           "categorical (one-hot classes, softmax cross-entropy as for RaFD)")
    c2_dim: int = option(0, "joint training on two datasets (--dataset both, the paper's Section 3.2): classes of "
                            "the second (RaFD's 8 expressions), categorical, after the c_dim labels of the first; "
                            "G then takes c_dim + c2_dim + 2 labels (the mask vector last); 0: one dataset")
    exclusive_attrs: list[str] = option(help="attributes of which exactly one is on: a test-time target sets one "
                                             "and clears the others, as the authors do for hair colours",
                                        default_factory=lambda: list(CELEBA_HAIR_COLOURS))
    g_conv_dim: int = option(64, "channels of G's first conv")
    d_conv_dim: int = option(64, "channels of D's first conv")
    g_repeat_num: int = option(6, "residual blocks of G")
    d_repeat_num: int = option(6, "stride-2 convs of D")

    @property
    def label_names(self) -> list[str]:
        """The names of the label vector's columns: selected_attrs (label_0, ... without them)."""
        return list(self.selected_attrs) or [f"label_{i}" for i in range(self.num_classes)]

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
        core.check_at_least(self, ("image_size", "c_dim", "g_conv_dim", "d_conv_dim", "g_repeat_num",
                                   "d_repeat_num"), 1)
        core.check_at_least(self, ("c2_dim",), 0)
        if self.image_size % 2 ** self.d_repeat_num:
            raise ConfigError(f"--image-size {self.image_size}: must be divisible by 2**d_repeat_num = "
                              f"{2 ** self.d_repeat_num} (D's classification head spans the last feature map).")
        if self.selected_attrs and len(self.selected_attrs) != self.num_classes:
            wanted = f"--c-dim + --c2-dim is {self.c_dim} + {self.c2_dim}" if self.c2_dim else f"--c-dim is {self.c_dim}"
            raise ConfigError(f"--selected-attrs has {len(self.selected_attrs)} names {self.selected_attrs} "
                              f"but {wanted}.")
        core.check_choice(self.label_type, "label_type", LABEL_TYPES)


@dataclass
class DataConfig(core.DataConfig):
    """The shared data fields and the authors' crops."""

    dataset: str = option("shapes", "shapes | celeba | rafd | both | a folder of class folders")
    celeba_crop_size: int = option(178, "CelebA images are centre-cropped to this square, then resized")
    rafd_crop_size: int = option(256, "RaFD and other folder images are centre-cropped to this square (or "
                                      "their shorter side), then resized; 0: no crop")

    def validate(self) -> None:
        super().validate()
        core.check_at_least(self, ("celeba_crop_size", "rafd_crop_size"), 0)


@dataclass
class TrainConfig(core.SessionConfig):
    """The authors' `solver.py` settings."""

    lambda_cls: float = option(1.0, "weight of the domain classification loss")
    lambda_rec: float = option(10.0, "weight of the reconstruction loss")
    lambda_gp: float = option(10.0, "weight of the gradient penalty")
    n_critic: int = option(5, "one G update every n_critic D updates")
    g_lr: float = option(1e-4, "learning rate of G")
    d_lr: float = option(1e-4, "learning rate of D")
    beta1: float = option(0.5, "Adam beta1 of G and D")
    beta2: float = option(0.999, "Adam beta2 of G and D")
    epsilon: float = option(1e-8, "Adam epsilon (PyTorch's default, which the authors keep)")
    lr_decay: str = option("linear", "linear (the paper: to 0 over the last num_iters_decay iterations) | "
                                     "released (the authors' code: lr0/num_iters_decay less every lr_update_step "
                                     "iterations there, 0.1% in all by default) | none")
    num_iters_decay: int = option(100_000, "the last iterations, over which the learning rates decay")
    lr_update_step: int = option(1000, "with --lr-decay released, iterations between two decrements")

    def validate(self) -> None:
        super().validate()
        core.check_at_least(self, ("n_critic", "num_iters_decay", "lr_update_step"), 1)
        core.check_choice(self.lr_decay, "lr_decay", LR_DECAYS)


@dataclass
class Config(core.RunConfig):
    """A StarGAN v1 run: G and D, the labelled data, the training, and where it all goes."""

    FAMILY: typing.ClassVar[str] = "v1"
    # The fields that shape the networks or give their labels meaning: a run's checkpoints fit no others.
    NETWORK_FIELDS: typing.ClassVar[tuple[str, ...]] = (
        "image_size", "c_dim", "c2_dim", "selected_attrs", "label_type", "g_conv_dim", "d_conv_dim", "g_repeat_num",
        "d_repeat_num")

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def image_size(self) -> int:
        return self.model.image_size
    run_dir: str = option("runs/v1_shapes", "run directory: config, checkpoints, samples, logs; re-use it to resume")

    @classmethod
    def upgrade(cls, data: dict) -> dict:
        """Configs written before the families had their own classes kept v1's fields in a `v1` section and
        StarGAN v2's optimisation fields (unused by v1, except Adam's epsilon) in `train`."""
        if LEGACY_SECTION not in data:
            return data
        legacy = data.pop(LEGACY_SECTION) or {}
        sections = {name: dict(data.get(name) or {}) for name in cls.sections()}
        sections["train"] = {key: value for key, value in sections["train"].items()
                             if key in cls.flat_fields() or key not in LEGACY_V2_TRAIN_FIELDS}
        sections["data"].pop("rrc_prob", None)
        for key, value in legacy.items():
            section = cls.flat_fields().get(key, ("model", None))[0]
            sections[section][key] = value
        return {**data, **sections}


LEGACY_SECTION = "v1"  # where configs of the earlier layout kept v1's fields
# StarGAN v2's `train` fields that configs of the earlier layout carried for v1 runs too.
LEGACY_V2_TRAIN_FIELDS = ("lr", "f_lr", "beta_1", "beta_2", "weight_decay", "lambda_reg", "lambda_sty", "lambda_ds",
                          "lambda_cyc", "ds_iter", "ema_beta")
