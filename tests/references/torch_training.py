"""An independent PyTorch reference of StarGAN v2 training iterations (tests only).

Written from the paper's training objectives (Choi et al., CVPR 2020, Section 2.2) with the
four updates per iteration of the authors' `core/solver.py` `Solver.train`, in plain order:
every forward pass is computed where the algorithm states it, nothing is batched, hoisted
or shared, and the optimizers are `torch.optim.Adam` with its own (coupled) weight decay.
The networks come from `torch_stargan_v2`. Unlike the authors' release, the EMA networks
start as copies of the trained ones (the authors deep-copy them before He initialisation).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

EMA_NAMES = ("generator", "mapping_network", "style_encoder")


def make_optimizers(nets: dict, *, lr: float, f_lr: float, beta_1: float, beta_2: float, epsilon: float,
                    weight_decay: float) -> dict:
    return {name: torch.optim.Adam(net.parameters(), lr=f_lr if name == "mapping_network" else lr,
                                   betas=(beta_1, beta_2), eps=epsilon, weight_decay=weight_decay)
            for name, net in nets.items()}


def ema_copies(nets: dict) -> dict:
    return {name: copy.deepcopy(nets[name]) for name in EMA_NAMES}


def to_torch(batch: dict, dtype=torch.float32) -> dict:
    """NHWC numpy batch -> NCHW float tensors of `dtype` and int64 labels."""
    out = {}
    for key, value in batch.items():
        value = np.asarray(value)
        if value.ndim == 4:
            out[key] = torch.from_numpy(value.transpose(0, 3, 1, 2).copy()).to(dtype)
        elif key.startswith("y"):
            out[key] = torch.from_numpy(value.astype(np.int64))
        else:
            out[key] = torch.from_numpy(value.copy()).to(dtype)
    return out


def _bce(logits, target):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(target)))


def discriminator_loss(nets, x_real, y_org, y_trg, lambda_reg, z_trg=None, x_ref=None, masks=None):
    x_real = x_real.clone().requires_grad_(True)
    out = nets["discriminator"](x_real, y_org)
    loss_real = _bce(out, 1)
    grad = torch.autograd.grad(out.sum(), x_real, create_graph=True)[0]
    loss_reg = 0.5 * grad.pow(2).flatten(1).sum(1).mean()
    with torch.no_grad():
        s_trg = nets["mapping_network"](z_trg, y_trg) if z_trg is not None else nets["style_encoder"](x_ref, y_trg)
        x_fake = nets["generator"](x_real, s_trg, masks)
    loss_fake = _bce(nets["discriminator"](x_fake, y_trg), 0)
    loss = loss_real + loss_fake + lambda_reg * loss_reg
    return loss, {"real": loss_real.item(), "fake": loss_fake.item(), "reg": loss_reg.item()}


def generator_loss(nets, x_real, y_org, y_trg, lambdas, lambda_ds, z_trgs=None, x_refs=None, masks=None,
                   masks_of=None):
    G, Fm, E, D = (nets[k] for k in ("generator", "mapping_network", "style_encoder", "discriminator"))
    if z_trgs is not None:
        s_trg, s_trg2 = Fm(z_trgs[0], y_trg), Fm(z_trgs[1], y_trg)
    else:
        s_trg, s_trg2 = E(x_refs[0], y_trg), E(x_refs[1], y_trg)
    x_fake = G(x_real, s_trg, masks)
    loss_adv = _bce(D(x_fake, y_trg), 1)
    loss_sty = torch.mean(torch.abs(E(x_fake, y_trg) - s_trg))
    x_fake2 = G(x_real, s_trg2, masks).detach()
    loss_ds = torch.mean(torch.abs(x_fake - x_fake2))
    with torch.no_grad():  # the cycle pass takes the masks of the translation
        masks_fake = masks_of(x_fake) if masks_of is not None else None
    x_rec = G(x_fake, E(x_real, y_org), masks_fake)
    loss_cyc = torch.mean(torch.abs(x_rec - x_real))
    loss = loss_adv + lambdas["sty"] * loss_sty - lambda_ds * loss_ds + lambdas["cyc"] * loss_cyc
    return loss, {"adv": loss_adv.item(), "sty": loss_sty.item(), "ds": loss_ds.item(), "cyc": loss_cyc.item()}


def _step(loss, nets, optims, names, record):
    for optim in optims.values():
        optim.zero_grad()
    loss.backward()
    for name in names:
        if record is not None:
            decay = optims[name].param_groups[0]["weight_decay"]
            record.append((name, {key: (p.grad + decay * p).detach().double().numpy().copy()
                                  for key, p in nets[name].named_parameters() if p.grad is not None}))
        optims[name].step()


def train_iteration(nets, nets_ema, optims, batch: dict, lambda_ds: float, *, lambda_reg: float, lambda_sty: float,
                    lambda_cyc: float, ema_beta: float, record: list | None = None, masks_of=None) -> dict:
    """One iteration in the networks' dtype; returns the upstream log dict (without G/lambda_ds).

    With `record`, appends (network, {parameter: effective gradient incl. weight decay}) per optimizer step.
    With `masks_of` (images -> the pair of face masks, for w_hpf > 0), G gets the masks of x_real in every
    pass but the cycle's, which gets those of x_fake, as in the authors' `Solver.train`.
    """
    b = to_torch(batch, next(nets["generator"].parameters()).dtype)
    x_real, y_org, y_trg = b["x_src"], b["y_src"], b["y_trg"]
    lambdas = {"sty": lambda_sty, "cyc": lambda_cyc}
    logs = {}
    with torch.no_grad():
        masks = masks_of(x_real) if masks_of is not None else None
    loss, terms = discriminator_loss(nets, x_real, y_org, y_trg, lambda_reg, z_trg=b["z_trg"], masks=masks)
    _step(loss, nets, optims, ["discriminator"], record)
    logs.update({f"D/latent_{k}": v for k, v in terms.items()})
    loss, terms = discriminator_loss(nets, x_real, y_org, y_trg, lambda_reg, x_ref=b["x_ref"], masks=masks)
    _step(loss, nets, optims, ["discriminator"], record)
    logs.update({f"D/ref_{k}": v for k, v in terms.items()})
    loss, terms = generator_loss(nets, x_real, y_org, y_trg, lambdas, lambda_ds, z_trgs=[b["z_trg"], b["z_trg2"]],
                                 masks=masks, masks_of=masks_of)
    _step(loss, nets, optims, ["generator", "mapping_network", "style_encoder"], record)
    logs.update({f"G/latent_{k}": v for k, v in terms.items()})
    loss, terms = generator_loss(nets, x_real, y_org, y_trg, lambdas, lambda_ds, x_refs=[b["x_ref"], b["x_ref2"]],
                                 masks=masks, masks_of=masks_of)
    _step(loss, nets, optims, ["generator"], record)
    logs.update({f"G/ref_{k}": v for k, v in terms.items()})
    with torch.no_grad():
        for name in EMA_NAMES:
            for param, param_ema in zip(nets[name].parameters(), nets_ema[name].parameters()):
                param_ema.copy_(torch.lerp(param, param_ema, ema_beta))
    return logs


def train(nets, nets_ema, optims, batches, lambda_ds0: float, ds_iter: int, records: list | None = None,
          snapshots: list | None = None, **kwargs) -> list[dict]:
    """Several iterations, with the authors' running decrement of lambda_ds (logged after it, as they do).

    With `records`, appends one gradient record (see `train_iteration`) per iteration; with
    `snapshots`, the weights (`all_weights`) before the first and after every iteration.
    """
    lambda_ds, all_logs = lambda_ds0, []
    if snapshots is not None:
        snapshots.append(all_weights(nets, nets_ema))
    for batch in batches:
        record = [] if records is not None else None
        logs = train_iteration(nets, nets_ema, optims, batch, lambda_ds, record=record, **kwargs)
        if records is not None:
            records.append(record)
        if snapshots is not None:
            snapshots.append(all_weights(nets, nets_ema))
        lambda_ds -= lambda_ds0 / ds_iter
        logs["G/lambda_ds"] = lambda_ds
        all_logs.append(logs)
    return all_logs


def all_weights(nets, nets_ema) -> dict:
    """{network/key: float64 array} of the trained networks and (prefixed `ema_`) the EMA ones."""
    return {f"{prefix}{name}/{key}": value.detach().double().numpy().copy()
            for prefix, group in (("", nets), ("ema_", nets_ema))
            for name, net in group.items() for key, value in net.state_dict().items()}
