"""An independent PyTorch reference of StarGAN v2's four networks (tests only).

Written in NCHW with torch.nn from the paper's architecture tables (Choi et al., CVPR 2020,
appendix); submodule names follow the authors' `core/model.py`, so `state_dict()` keys are
those of the released checkpoints (`from_rgb.weight`, `encode.0.conv1.weight`,
`decode.0.norm1.fc.bias`, `to_rgb.2.weight`, `hpf.filter`, `shared.0.weight`,
`unshared.1.6.bias`, `main.7.weight`). Unlike upstream, every width is a parameter so tests
can run narrow networks at 16-64 px.

Speed tip for tests: call `torch.set_num_threads(1)` in the test module; beside
TensorFlow's thread pool, torch's own makes these tiny networks much slower.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

SKIP_SIZES = (32, 64, 128)


def _lrelu():
    return nn.LeakyReLU(0.2)


class ResBlk(nn.Module):
    def __init__(self, dim_in, dim_out, normalize=False, downsample=False):
        super().__init__()
        self.normalize, self.downsample = normalize, downsample
        self.learned_sc = dim_in != dim_out
        self.actv = _lrelu()
        self.conv1 = nn.Conv2d(dim_in, dim_in, 3, padding=1)
        self.conv2 = nn.Conv2d(dim_in, dim_out, 3, padding=1)
        if normalize:
            self.norm1 = nn.InstanceNorm2d(dim_in, affine=True)
            self.norm2 = nn.InstanceNorm2d(dim_in, affine=True)
        if self.learned_sc:
            self.conv1x1 = nn.Conv2d(dim_in, dim_out, 1, bias=False)

    def forward(self, x):
        skip = self.conv1x1(x) if self.learned_sc else x
        h = self.norm1(x) if self.normalize else x
        h = self.conv1(self.actv(h))
        if self.downsample:
            skip, h = F.avg_pool2d(skip, 2), F.avg_pool2d(h, 2)
        if self.normalize:
            h = self.norm2(h)
        h = self.conv2(self.actv(h))
        return (skip + h) / math.sqrt(2)


class AdaIN(nn.Module):
    def __init__(self, style_dim, channels):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.fc = nn.Linear(style_dim, 2 * channels)

    def forward(self, x, s):
        gamma, beta = self.fc(s)[:, :, None, None].chunk(2, dim=1)
        return (1 + gamma) * self.norm(x) + beta


class AdainResBlk(nn.Module):
    def __init__(self, dim_in, dim_out, style_dim, w_hpf=0.0, upsample=False):
        super().__init__()
        self.w_hpf, self.upsample = w_hpf, upsample
        self.learned_sc = dim_in != dim_out
        self.actv = _lrelu()
        self.conv1 = nn.Conv2d(dim_in, dim_out, 3, padding=1)
        self.conv2 = nn.Conv2d(dim_out, dim_out, 3, padding=1)
        self.norm1 = AdaIN(style_dim, dim_in)
        self.norm2 = AdaIN(style_dim, dim_out)
        if self.learned_sc:
            self.conv1x1 = nn.Conv2d(dim_in, dim_out, 1, bias=False)

    def _up(self, x):
        return F.interpolate(x, scale_factor=2, mode="nearest") if self.upsample else x

    def forward(self, x, s):
        h = self.conv1(self._up(self.actv(self.norm1(x, s))))
        h = self.conv2(self.actv(self.norm2(h, s)))
        if self.w_hpf > 0:
            return h
        skip = self._up(x)
        if self.learned_sc:
            skip = self.conv1x1(skip)
        return (h + skip) / math.sqrt(2)


class HighPass(nn.Module):
    def __init__(self, w_hpf):
        super().__init__()
        kernel = torch.full((3, 3), -1.0)
        kernel[1, 1] = 8.0
        self.register_buffer("filter", kernel / w_hpf)

    def forward(self, x):
        channels = x.shape[1]
        weight = self.filter.expand(channels, 1, 3, 3)
        return F.conv2d(x, weight, padding=1, groups=channels)


def _base(img_size, base_dim):
    return base_dim if base_dim is not None else 2**14 // img_size


class Generator(nn.Module):
    def __init__(self, img_size=256, style_dim=64, max_conv_dim=512, w_hpf=1.0, base_dim=None):
        super().__init__()
        dim = _base(img_size, base_dim)
        self.from_rgb = nn.Conv2d(3, dim, 3, padding=1)
        self.encode, self.decode = nn.ModuleList(), nn.ModuleList()
        self.to_rgb = nn.Sequential(nn.InstanceNorm2d(dim, affine=True), _lrelu(), nn.Conv2d(dim, 3, 1))
        levels = int(math.log2(img_size)) - 4 + (1 if w_hpf > 0 else 0)
        wide = dim
        for _ in range(levels):
            wide = min(dim * 2, max_conv_dim)
            self.encode.append(ResBlk(dim, wide, normalize=True, downsample=True))
            self.decode.insert(0, AdainResBlk(wide, dim, style_dim, w_hpf, upsample=True))
            dim = wide
        for _ in range(2):
            self.encode.append(ResBlk(wide, wide, normalize=True))
            self.decode.insert(0, AdainResBlk(wide, wide, style_dim, w_hpf))
        if w_hpf > 0:
            self.hpf = HighPass(w_hpf)

    def forward(self, x, s, masks=None):
        """masks: None or a pair of [N,1,H,W] maps (the first is used at 32 px, the second at 64/128)."""
        x = self.from_rgb(x)
        cache = {}
        for block in self.encode:
            if masks is not None and x.shape[2] in SKIP_SIZES:
                cache[x.shape[2]] = x
            x = block(x)
        for block in self.decode:
            x = block(x, s)
            size = x.shape[2]
            if masks is not None and size in SKIP_SIZES:
                mask = F.interpolate(masks[0] if size == 32 else masks[1], size=size, mode="bilinear")
                x = x + self.hpf(mask * cache[size])
        return self.to_rgb(x)


def _pick(per_domain, y):
    return per_domain[torch.arange(y.shape[0]), y]


class MappingNetwork(nn.Module):
    def __init__(self, latent_dim=16, style_dim=64, num_domains=2, hidden_dim=512):
        super().__init__()
        shared = [nn.Linear(latent_dim, hidden_dim), nn.ReLU()]
        for _ in range(3):
            shared += [nn.Linear(hidden_dim, hidden_dim), nn.ReLU()]
        self.shared = nn.Sequential(*shared)
        head = lambda: nn.Sequential(  # noqa: E731
            nn.Linear(hidden_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
            nn.Linear(hidden_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, style_dim))
        self.unshared = nn.ModuleList(head() for _ in range(num_domains))

    def forward(self, z, y):
        h = self.shared(z)
        return _pick(torch.stack([head(h) for head in self.unshared], dim=1), y)


def _trunk(img_size, base_dim, max_conv_dim):
    dim = _base(img_size, base_dim)
    blocks = [nn.Conv2d(3, dim, 3, padding=1)]
    wide = dim
    for _ in range(int(math.log2(img_size)) - 2):
        wide = min(dim * 2, max_conv_dim)
        blocks.append(ResBlk(dim, wide, downsample=True))
        dim = wide
    blocks += [_lrelu(), nn.Conv2d(wide, wide, 4), _lrelu()]
    return blocks, wide


class StyleEncoder(nn.Module):
    def __init__(self, img_size=256, style_dim=64, num_domains=2, max_conv_dim=512, base_dim=None):
        super().__init__()
        blocks, wide = _trunk(img_size, base_dim, max_conv_dim)
        self.shared = nn.Sequential(*blocks)
        self.unshared = nn.ModuleList(nn.Linear(wide, style_dim) for _ in range(num_domains))

    def forward(self, x, y):
        h = self.shared(x).flatten(1)
        return _pick(torch.stack([head(h) for head in self.unshared], dim=1), y)


class Discriminator(nn.Module):
    def __init__(self, img_size=256, num_domains=2, max_conv_dim=512, base_dim=None):
        super().__init__()
        blocks, wide = _trunk(img_size, base_dim, max_conv_dim)
        self.main = nn.Sequential(*blocks, nn.Conv2d(wide, num_domains, 1))

    def forward(self, x, y):
        return _pick(self.main(x).flatten(1), y)


def he_init(module: nn.Module) -> None:
    """The authors' initialisation: kaiming_normal_(fan_in, relu gain) for conv/linear, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def perturb(module: nn.Module) -> None:
    """Every bias and every norm's scale and shift away from the zeros and ones of an initialisation, so that a
    converted or trained layer that drops one of them gives other outputs (the AdaIN scales and shifts come from
    `fc`, whose bias this perturbs too)."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.uniform_(-0.2, 0.2)
            elif isinstance(m, nn.InstanceNorm2d) and m.affine:
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)


def build_reference_networks(img_size, num_domains, w_hpf, base_dim, max_conv_dim, style_dim=64, latent_dim=16,
                             hidden_dim=512, seed=0) -> dict:
    """The four networks, He-initialised from `seed` with every bias and norm parameter perturbed, in eval mode."""
    torch.manual_seed(seed)
    nets = dict(
        generator=Generator(img_size, style_dim, max_conv_dim, w_hpf, base_dim),
        mapping_network=MappingNetwork(latent_dim, style_dim, num_domains, hidden_dim),
        style_encoder=StyleEncoder(img_size, style_dim, num_domains, max_conv_dim, base_dim),
        discriminator=Discriminator(img_size, num_domains, max_conv_dim, base_dim),
    )
    for net in nets.values():
        he_init(net)
        perturb(net)
        net.eval()
    return nets


def build_networks_like(model, seed=0) -> dict:
    """`build_reference_networks` at the sizes of a stargan_keras `ModelConfig`, read by attribute only."""
    return build_reference_networks(model.img_size, model.num_domains, model.w_hpf, model.base_dim,
                                    model.max_conv_dim, style_dim=model.style_dim, latent_dim=model.latent_dim,
                                    hidden_dim=model.mapping_hidden_dim, seed=seed)


def save_upstream_checkpoints(nets: dict, directory, step: int = 100000) -> tuple[Path, Path]:
    """Write `{step}_nets.ckpt` (all four networks) and `{step}_nets_ema.ckpt` (G, F, E) as upstream does."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {name: net.state_dict() for name, net in nets.items()}
    nets_path = directory / f"{step}_nets.ckpt"
    ema_path = directory / f"{step}_nets_ema.ckpt"
    torch.save(state, nets_path)
    torch.save({name: state[name] for name in ("generator", "mapping_network", "style_encoder")}, ema_path)
    return nets_path, ema_path
