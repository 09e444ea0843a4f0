"""Independent PyTorch references of the metric networks (tests only).

- `TorchInception3`: torchvision's Inception3 trunk written out with torch.nn, as the authors'
  FID calls it (clovaai/stargan-v2 `metrics/fid.py` `InceptionV3`: the blocks directly, no
  `transform_input`), module names as torchvision's so its `state_dict()` keys are those of
  torchvision's file.
- `TorchLPIPS`: the StarGAN v2 LPIPS (clovaai/stargan-v2 `metrics/lpips.py`): torchvision's
  AlexNet features and the learned 1x1 linear layers, on NCHW [-1, 1] images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LPIPS_CHANNELS = (64, 192, 384, 256, 256)  # the five AlexNet ReLU outputs LPIPS compares


class Basic(nn.Module):
    def __init__(self, cin, cout, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _pool3(x):
    return F.avg_pool2d(x, 3, stride=1, padding=1)


class BlockA(nn.Module):
    def __init__(self, cin, pool_features):
        super().__init__()
        self.branch1x1 = Basic(cin, 64, kernel_size=1)
        self.branch5x5_1 = Basic(cin, 48, kernel_size=1)
        self.branch5x5_2 = Basic(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = Basic(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = Basic(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = Basic(96, 96, kernel_size=3, padding=1)
        self.branch_pool = Basic(cin, pool_features, kernel_size=1)

    def forward(self, x):
        return torch.cat([self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          self.branch_pool(_pool3(x))], 1)


class BlockB(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3 = Basic(cin, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = Basic(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = Basic(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = Basic(96, 96, kernel_size=3, stride=2)

    def forward(self, x):
        return torch.cat([self.branch3x3(x),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          F.max_pool2d(x, 3, stride=2)], 1)


class BlockC(nn.Module):
    def __init__(self, cin, c7):
        super().__init__()
        self.branch1x1 = Basic(cin, 192, kernel_size=1)
        self.branch7x7_1 = Basic(cin, c7, kernel_size=1)
        self.branch7x7_2 = Basic(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = Basic(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = Basic(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = Basic(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = Basic(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = Basic(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = Basic(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = Basic(cin, 192, kernel_size=1)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = layer(bd)
        return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(_pool3(x))], 1)


class BlockD(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3_1 = Basic(cin, 192, kernel_size=1)
        self.branch3x3_2 = Basic(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = Basic(cin, 192, kernel_size=1)
        self.branch7x7x3_2 = Basic(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = Basic(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = Basic(192, 192, kernel_size=3, stride=2)

    def forward(self, x):
        b7 = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = layer(b7)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7, F.max_pool2d(x, 3, stride=2)], 1)


class BlockE(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch1x1 = Basic(cin, 320, kernel_size=1)
        self.branch3x3_1 = Basic(cin, 384, kernel_size=1)
        self.branch3x3_2a = Basic(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = Basic(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = Basic(cin, 448, kernel_size=1)
        self.branch3x3dbl_2 = Basic(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = Basic(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = Basic(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = Basic(cin, 192, kernel_size=1)

    def forward(self, x):
        b3 = self.branch3x3_1(x)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(b3), self.branch3x3_2b(b3),
                          self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd),
                          self.branch_pool(_pool3(x))], 1)


class TorchInception3(nn.Module):
    """torchvision's Inception3 trunk as the authors' FID calls it (no transform_input)."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = Basic(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = Basic(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = Basic(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = Basic(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = Basic(80, 192, kernel_size=3)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = BlockA(192, 32), BlockA(256, 64), BlockA(288, 64)
        self.Mixed_6a = BlockB(288)
        self.Mixed_6b, self.Mixed_6c = BlockC(768, 128), BlockC(768, 160)
        self.Mixed_6d, self.Mixed_6e = BlockC(768, 160), BlockC(768, 192)
        self.Mixed_7a, self.Mixed_7b, self.Mixed_7c = BlockD(768), BlockE(1280), BlockE(2048)
        self.fc = nn.Linear(2048, 10)  # unused by the features, present in torchvision's files

    def forward(self, x):
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, 3, stride=2)))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return x.mean(dim=(2, 3))


class TorchAlexNetFeatures(nn.Module):
    """torchvision's alexnet().features, written out; returns the five ReLU outputs."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))

    def forward(self, x):
        maps = []
        for layer in self.features:
            x = layer(x)
            if isinstance(layer, nn.ReLU):
                maps.append(x)
        return maps


class TorchLPIPS(nn.Module):
    """The StarGAN v2 metric: per-image LPIPS on NCHW [-1, 1] images."""

    def __init__(self, linear_state_dict):
        super().__init__()
        self.alexnet = TorchAlexNetFeatures()
        self.linear = [nn.Conv2d(c, 1, 1, bias=False) for c in LPIPS_CHANNELS]
        for i, conv in enumerate(self.linear):
            conv.weight.data.copy_(linear_state_dict[f"lpips_weights.{i}.main.1.weight"])
        self.mu = torch.tensor([-0.03, -0.088, -0.188]).view(1, 3, 1, 1)
        self.sigma = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def forward(self, x, y):
        def unit(t):
            return t * torch.rsqrt(torch.sum(t ** 2, dim=1, keepdim=True) + 1e-10)
        x_maps = self.alexnet((x - self.mu) / self.sigma)
        y_maps = self.alexnet((y - self.mu) / self.sigma)
        return sum(conv((unit(a) - unit(b)) ** 2).mean(dim=(1, 2, 3))
                   for a, b, conv in zip(x_maps, y_maps, self.linear))
