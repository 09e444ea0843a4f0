"""StarGAN v2's configuration: the four networks' sizes, the paper's training settings, and the data.

Defaults are the paper's (Choi et al., CVPR 2020) and the authors' release (clovaai/stargan-v2
`main.py`); YAML presets (`afhq`, `celeba_hq`, `shapes`) override them.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field

from stargan_keras.core import config as core
from stargan_keras.core.config import ConfigError, option


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
    fan_checkpoint: str = option("", "w_hpf > 0: the authors' wing.ckpt or a model directory's fan.weights.h5 (the "
                                     "face-landmark network behind the skips' masks), converted into the run or "
                                     "model directory")
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
        core.check_at_least(self, ("num_domains",), 1)
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
class DataConfig(core.DataConfig):
    """The shared data fields and the paper's augmentation (the authors' `core/data_loader.py`)."""

    rrc_prob: float = option(0.5, "probability of the random-resized crop")


@dataclass
class TrainConfig(core.SessionConfig):
    """The training algorithm's settings (the paper's Section 4 and the authors' `core/solver.py`)."""

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

    def validate(self) -> None:
        super().validate()
        core.check_at_least(self, ("ds_iter",), 1)


@dataclass
class Config(core.RunConfig):
    """A StarGAN v2 run: the networks, the data, the training, and where it all goes."""

    FAMILY: typing.ClassVar[str] = "v2"
    # `fan_checkpoint` says where the FAN came from (the run keeps its own copy); it shapes no network.
    NETWORK_FIELDS: typing.ClassVar[tuple[str, ...]] = (
        "img_size", "num_domains", "domain_names", "latent_dim", "style_dim", "mapping_hidden_dim", "w_hpf",
        "base_dim", "max_conv_dim")

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def image_size(self) -> int:
        return self.model.img_size

    def network_values(self, wanted: "Config"):
        resolved = {"base_dim": (self.model.resolved_base_dim, wanted.model.resolved_base_dim)}
        return [(name, *resolved.get(name, (getattr(self.model, name), getattr(wanted.model, name))))
                for name in self.NETWORK_FIELDS]
