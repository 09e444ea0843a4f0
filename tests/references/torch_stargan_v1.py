"""An independent PyTorch StarGAN v1 for the tests: the networks, the authors' file layout, one training iteration.

Written from the paper (Choi et al., CVPR 2018: Section 3 and the appendix's
architecture tables) with the module indices of the authors' yunjey/stargan
`model.py`, so that `state_dict()` has their keys, and the iteration of their
`solver.py` `Solver.train` in plain order: every forward pass where the algorithm
states it, nothing shared or batched, `torch.optim.Adam`. With two datasets
(`v1.c2_dim` > 0) G and D are sized as in their `build_model` for `Both`, and an
iteration on one dataset's batch classifies with that dataset's slice of D's logits,
as their `train_multi` does. Instance norms are
`InstanceNorm2d(affine=True, track_running_stats=True)` in train mode, as the
authors run them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _norm(channels):
    return nn.InstanceNorm2d(channels, affine=True, track_running_stats=True)


class Bottleneck(nn.Module):
    def __init__(self, channels):
        super().__init__()
        conv = [nn.Conv2d(channels, channels, 3, 1, 1, bias=False) for _ in range(2)]
        self.main = nn.Sequential(conv[0], _norm(channels), nn.ReLU(), conv[1], _norm(channels))

    def forward(self, x):
        return self.main(x) + x


class TorchGenerator(nn.Module):
    def __init__(self, conv_dim=64, c_dim=5, repeat_num=6):
        super().__init__()
        widths = [conv_dim, conv_dim * 2, conv_dim * 4]
        seq = [nn.Conv2d(3 + c_dim, widths[0], 7, 1, 3, bias=False), _norm(widths[0]), nn.ReLU()]
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            seq += [nn.Conv2d(w_in, w_out, 4, 2, 1, bias=False), _norm(w_out), nn.ReLU()]
        seq += [Bottleneck(widths[-1]) for _ in range(repeat_num)]
        for w_in, w_out in zip(widths[:0:-1], widths[-2::-1]):
            seq += [nn.ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=False), _norm(w_out), nn.ReLU()]
        seq += [nn.Conv2d(widths[0], 3, 7, 1, 3, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*seq)

    def forward(self, x, c):
        label_planes = c[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        return self.main(torch.cat([x, label_planes], dim=1))


class TorchDiscriminator(nn.Module):
    def __init__(self, image_size=128, conv_dim=64, c_dim=5, repeat_num=6):
        super().__init__()
        seq, width_in = [], 3
        for i in range(repeat_num):
            seq += [nn.Conv2d(width_in, conv_dim * 2 ** i, 4, 2, 1), nn.LeakyReLU(0.01)]
            width_in = conv_dim * 2 ** i
        self.main = nn.Sequential(*seq)
        self.conv1 = nn.Conv2d(width_in, 1, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(width_in, c_dim, image_size // 2 ** repeat_num, bias=False)

    def forward(self, x):
        features = self.main(x)
        return self.conv1(features), self.conv2(features).flatten(1)


def build_networks_like(v1, seed=0) -> dict:
    """Random G and D of a `V1Config`, with norms' scales and shifts perturbed away from 1 and 0."""
    torch.manual_seed(seed)
    joint = 2 if v1.c2_dim else 0  # the authors' mask vector
    nets = {"generator": TorchGenerator(v1.g_conv_dim, v1.c_dim + v1.c2_dim + joint, v1.g_repeat_num),
            "discriminator": TorchDiscriminator(v1.image_size, v1.d_conv_dim, v1.c_dim + v1.c2_dim, v1.d_repeat_num)}
    with torch.no_grad():
        for module in nets["generator"].modules():
            if isinstance(module, nn.InstanceNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
                module.running_mean.uniform_(-1, 1)  # must not matter: the authors never use them
                module.running_var.uniform_(0.5, 2)
    return nets


def save_authors_checkpoints(nets: dict, directory: Path, step: int = 200000) -> tuple[Path, Path]:
    """The authors' layout: `{step}-G.ckpt` and `{step}-D.ckpt`, plain state dicts."""
    directory = Path(directory)
    paths = directory / f"{step}-G.ckpt", directory / f"{step}-D.ckpt"
    torch.save(nets["generator"].state_dict(), paths[0])
    torch.save(nets["discriminator"].state_dict(), paths[1])
    return paths


def nchw(images: np.ndarray, dtype=torch.float32) -> torch.Tensor:
    return torch.from_numpy(np.asarray(images).transpose(0, 3, 1, 2).copy()).to(dtype)


def _classification(logits, target, label_type):
    if label_type == "categorical":
        return F.cross_entropy(logits, target.argmax(dim=1))
    return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / logits.shape[0]


def make_optimizers(nets: dict, *, g_lr: float, d_lr: float, beta1: float, beta2: float, epsilon: float) -> dict:
    return {"generator": torch.optim.Adam(nets["generator"].parameters(), g_lr, betas=(beta1, beta2), eps=epsilon),
            "discriminator": torch.optim.Adam(nets["discriminator"].parameters(), d_lr, betas=(beta1, beta2),
                                              eps=epsilon)}


def _dataset_classification(logits, target, labels: dict, dataset):
    """The authors' `train_multi`: CelebA (dataset 0) uses out_cls[:, :c_dim], RaFD out_cls[:, c_dim:]."""
    c_dim, c2_dim = labels["c_dim"], labels.get("c2_dim", 0)
    if not c2_dim:
        return _classification(logits, target, labels["label_type"])
    if dataset == 0:
        return _classification(logits[:, :c_dim], target[:, :c_dim], labels["label_type"])
    return _classification(logits[:, c_dim:], target[:, c_dim:c_dim + c2_dim], "categorical")


def train_iteration(nets: dict, optims: dict, batch: dict, update_generator: bool, *, lambda_cls: float,
                    lambda_rec: float, lambda_gp: float, labels: dict, dtype=torch.float32, dataset: int = 0) -> dict:
    """One iteration of the authors' algorithm (on dataset `dataset`'s batch in joint mode); returns their log
    dict (`D/loss_real`, ..., `G/loss_cls`). `labels`: {"label_type": "attributes" or "categorical", "c_dim": n,
    "c2_dim": the second dataset's label count in joint mode}."""
    G, D = nets["generator"], nets["discriminator"]
    x_real = nchw(batch["x_real"], dtype)
    c_org, c_trg = (torch.from_numpy(np.asarray(batch[k])).to(dtype) for k in ("c_org", "c_trg"))
    alpha = torch.from_numpy(np.asarray(batch["alpha"])).to(dtype).view(-1, 1, 1, 1)
    logs = {}

    src, cls = D(x_real)
    d_real = -src.mean()
    d_cls = _dataset_classification(cls, c_org, labels, dataset)
    x_fake = G(x_real, c_trg)
    src, _ = D(x_fake.detach())
    d_fake = src.mean()
    x_hat = (alpha * x_real + (1 - alpha) * x_fake.detach()).requires_grad_(True)
    src, _ = D(x_hat)
    grad = torch.autograd.grad(src, x_hat, grad_outputs=torch.ones_like(src), create_graph=True)[0]
    d_gp = ((grad.flatten(1).pow(2).sum(1).sqrt() - 1) ** 2).mean()
    d_loss = d_real + d_fake + lambda_cls * d_cls + lambda_gp * d_gp
    for optim in optims.values():
        optim.zero_grad()
    d_loss.backward()
    optims["discriminator"].step()
    logs.update({"D/loss_real": d_real.item(), "D/loss_fake": d_fake.item(), "D/loss_cls": d_cls.item(),
                 "D/loss_gp": d_gp.item()})

    if update_generator:
        x_fake = G(x_real, c_trg)
        src, cls = D(x_fake)
        g_fake = -src.mean()
        g_cls = _dataset_classification(cls, c_trg, labels, dataset)
        g_rec = (x_real - G(x_fake, c_org)).abs().mean()
        g_loss = g_fake + lambda_rec * g_rec + lambda_cls * g_cls
        for optim in optims.values():
            optim.zero_grad()
        g_loss.backward()
        optims["generator"].step()
        logs.update({"G/loss_fake": g_fake.item(), "G/loss_rec": g_rec.item(), "G/loss_cls": g_cls.item()})
    return logs


def weights(nets: dict) -> dict:
    """{network/key: float64 array} of the parameters (the running buffers left out)."""
    return {f"{name}/{key}": value.detach().double().numpy().copy()
            for name, net in nets.items() for key, value in net.named_parameters()}
