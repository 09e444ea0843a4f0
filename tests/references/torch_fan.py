"""An independent PyTorch reference of the StarGAN v2 face-landmark network and its masks (tests only).

Transcribed for the tests from the authors' description of `core/wing.py` (clovaai/stargan-v2,
adapted there from AdaptiveWingLoss): the FAN (CoordConv with r, ConvBlocks, a depth-4
hourglass, 98 landmarks + 1 boundary channel), `get_heatmap` and `preprocess`. Module names
follow upstream, so `state_dict()` keys are those of `wing.ckpt` (`conv1.conv.weight`,
`m0.b2_plus_1.bn1.running_var`, `l0.bias`, ...). Row shifts use `torch.roll` and the mask steps
follow the authors' order (per-part operations, zeroed channels, nose, eyes, second mask), so
the table-driven Keras version is checked against a different formulation.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-5


class CoordConv(nn.Module):
    """Concatenate (row, column, radius) coordinate maps, then a conv (upstream CoordConvTh, no boundary)."""

    def __init__(self, size, cin, cout, kernel, stride=1, padding=0):
        super().__init__()
        axis = torch.linspace(-1.0, 1.0, size)
        rows, cols = torch.meshgrid(axis, axis, indexing="ij")
        radius = torch.sqrt(rows ** 2 + cols ** 2)
        self.register_buffer("coords", torch.stack([rows, cols, radius / radius.max()])[None], persistent=False)
        self.conv = nn.Conv2d(cin + 3, cout, kernel, stride, padding)

    def forward(self, x):
        return self.conv(torch.cat([x, self.coords.expand(x.shape[0], -1, -1, -1)], 1))


class ConvBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        half, quarter = cout // 2, cout // 4
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, half, 3, 1, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(half), nn.Conv2d(half, quarter, 3, 1, 1, bias=False)
        self.bn3, self.conv3 = nn.BatchNorm2d(quarter), nn.Conv2d(quarter, quarter, 3, 1, 1, bias=False)
        self.downsample = None
        if cin != cout:
            self.downsample = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x):
        a = self.conv1(F.relu(self.bn1(x)))
        b = self.conv2(F.relu(self.bn2(a)))
        c = self.conv3(F.relu(self.bn3(b)))
        residual = x if self.downsample is None else self.downsample(x)
        return torch.cat([a, b, c], 1) + residual


class HourGlass(nn.Module):
    def __init__(self, depth=4, features=256):
        super().__init__()
        self.depth = depth
        self.coordconv = CoordConv(64, features, features, 1)
        for level in range(depth, 0, -1):
            self.add_module(f"b1_{level}", ConvBlock(features, features))
            self.add_module(f"b2_{level}", ConvBlock(features, features))
            self.add_module(f"b3_{level}", ConvBlock(features, features))
        self.add_module("b2_plus_1", ConvBlock(features, features))

    def level(self, level, x):
        up = getattr(self, f"b1_{level}")(x)
        low = getattr(self, f"b2_{level}")(F.avg_pool2d(x, 2))
        low = self.level(level - 1, low) if level > 1 else self.b2_plus_1(low)
        low = getattr(self, f"b3_{level}")(low)
        return up + F.interpolate(low, scale_factor=2, mode="nearest")

    def forward(self, x):
        return self.level(self.depth, self.coordconv(x))


class TorchFAN(nn.Module):
    """[N,3,256,256] in [0,1] -> [N,99,64,64]: 98 landmark heatmaps and the boundary channel."""

    def __init__(self, num_landmarks=98):
        super().__init__()
        self.conv1 = CoordConv(256, 3, 64, 7, stride=2, padding=3)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2, self.conv3, self.conv4 = ConvBlock(64, 128), ConvBlock(128, 128), ConvBlock(128, 256)
        self.m0 = HourGlass()
        self.top_m_0 = ConvBlock(256, 256)
        self.conv_last0 = nn.Conv2d(256, 256, 1)
        self.bn_end0 = nn.BatchNorm2d(256)
        self.l0 = nn.Conv2d(256, num_landmarks + 1, 1)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.conv4(self.conv3(F.avg_pool2d(self.conv2(x), 2)))
        x = self.top_m_0(self.m0(x))
        return self.l0(F.relu(self.bn_end0(self.conv_last0(x))))


def randomize(fan: TorchFAN, seed: int = 0, heat_mean: float = -0.25, heat_std: float = 0.15) -> TorchFAN:
    """Random weights and random BatchNorm running statistics (positive variances), in eval mode.

    Convs are He-normal, so activations grow through the residual blocks; the heatmap layer
    (l0) is then rescaled so that on random images its outputs have about `heat_mean` and
    `heat_std`, the size of real heatmaps, with a share of them above the masks' 0.1 cut.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in fan.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                if module.bias is not None:
                    module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1)
            elif isinstance(module, nn.BatchNorm2d):
                count = module.num_features
                module.weight.copy_(1.0 + 0.2 * torch.randn(count, generator=gen))
                module.bias.copy_(0.1 * torch.randn(count, generator=gen))
                module.running_mean.copy_(0.2 * torch.randn(count, generator=gen))
                module.running_var.copy_(0.5 + torch.rand(count, generator=gen))
                module.num_batches_tracked.fill_(int(torch.randint(1, 10_000, (1,), generator=gen)))
        fan.eval()
        heat = fan(torch.rand((1, 3, 256, 256), generator=gen)) - fan.l0.bias[:, None, None]
        fan.l0.weight.mul_(heat_std / heat.std())
        fan.l0.bias.copy_(heat_mean - heat.mean() * heat_std / heat.std() + 0.02 * torch.randn(
            fan.l0.bias.shape, generator=gen))
    return fan


def save_wing_checkpoint(fan: TorchFAN, path, entry: str = "state_dict", prefix: str = "") -> Path:
    """Write `fan` as upstream's wing.ckpt (`{'state_dict': ...}`) or, with entry='fan', as the FAN
    entry of a `*_nets_ema.ckpt`; `prefix` ('module.') imitates a DataParallel state dict."""
    path = Path(path)
    torch.save({entry: {prefix + key: value for key, value in fan.state_dict().items()}}, path)
    return path


def get_heatmap(fan: TorchFAN, x: torch.Tensor, masks: bool = True):
    """x [N,3,H,W] in [-1,1] -> the two masks [N,1,256,256] (masks=True) or the raw heatmaps [N,98,64,64]."""
    x = F.interpolate(x, size=256, mode="bilinear", align_corners=False)
    with torch.no_grad():
        heat = fan(x * 0.5 + 0.5)[:, :98]
    return masks_from_heatmaps(heat) if masks else heat


def upsample_heatmaps(heat):
    """[N,98,64,64] -> [N,98,256,256], bilinear with align_corners=True as upstream."""
    return F.interpolate(heat, scale_factor=256 // heat.shape[2], mode="bilinear", align_corners=True)


def masks_from_heatmaps(heat):
    return preprocess(upsample_heatmaps(heat))


# core/wing.py `index_map`: [start, end) channel ranges of the 98-landmark layout (WFLW).
PARTS = dict(chin=(8, 25), eyebrows=(33, 51), eyebrowsedges=(33, 46), nose=(51, 55), nostrils=(55, 60),
             eyes=(60, 76), lipedges=(76, 82), lipupper=(77, 82), liplower=(83, 88), lipinner=(88, 96))
# core/wing.py `preprocess`: (row shift at 256 px, power) per part.
PART_OPS = dict(chin=(0, 3), eyebrows=(-7, 2), nostrils=(8, 4), lipupper=(-8, 4), liplower=(8, 4), lipinner=(-2, 3))


def shift_rows(x, n):
    """Output row i = input row (i + n) mod H (n > 0 moves the content up)."""
    return torch.roll(x, shifts=-n, dims=2)


def truncate_and_normalize(x, cut=0.1, eps=1e-6):
    x = torch.where(x < cut, torch.zeros_like(x), x)
    flat = x.flatten(2)
    low, high = flat.min(2, keepdim=True)[0], flat.max(2, keepdim=True)[0]
    return ((flat - low) / (high - low + eps)).view_as(x)


def arrange(x):
    """The per-part shifts, powers and zeroing, then both channel sums clamped to [0, 1] (no normalisation)."""
    x = x.clone()
    for part, (shift, power) in PART_OPS.items():
        start, end = PARTS[part]
        x[:, start:end] = shift_rows(x[:, start:end], shift) ** power
    zeroed = list(range(0, PARTS["chin"][0])) + list(range(PARTS["chin"][1], 33))
    zeroed += [PARTS["eyebrowsedges"][0], PARTS["eyebrowsedges"][1], PARTS["lipedges"][0], PARTS["lipedges"][1]]
    x[:, zeroed] = 0
    start, end = PARTS["nose"]
    x[:, start + 1:end] = shift_rows(x[:, start + 1:end], 4)
    start, end = PARTS["eyes"]
    eyes = x[:, start:end].clone()
    x[:, start:end] = shift_rows(eyes, -8) ** 3 + shift_rows(eyes, -24)
    second = x.clone()
    for part in ("chin", "eyebrows"):
        second[:, slice(*PARTS[part])] = 0
    second[:, PARTS["lipedges"][0]:PARTS["lipinner"][1]] = 0
    return x.sum(1, keepdim=True).clamp(0, 1), second.sum(1, keepdim=True).clamp(0, 1)


def preprocess(heat):
    """[N,98,256,256] heatmaps -> (mask 1, mask 2), each [N,1,256,256] in [0,1]."""
    return arrange(truncate_and_normalize(heat))
