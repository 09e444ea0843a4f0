"""Each family's networks in its authors' checkpoint layout, with random weights from the independent PyTorch
references (`tests/references/`), and the outputs the converted networks must give. Imports torch when called."""

from __future__ import annotations

import numpy as np


def v2_files(config, directory, seed: int = 0):
    """(reference networks, {step}_nets_ema.ckpt, {step}_nets.ckpt) of `config`'s networks."""
    from tests.references.torch_stargan_v2 import build_networks_like, save_upstream_checkpoints

    nets = build_networks_like(config.model, seed=seed)
    nets_path, ema_path = save_upstream_checkpoints(nets, directory)
    return nets, ema_path, nets_path


def v2_outputs(nets, model, rng, batch: int = 3):
    """(what, ours, the reference's) of F, E, D and G on random inputs."""
    import torch

    size, domains, latent = model.config.model.img_size, model.config.model.num_domains, model.config.model.latent_dim
    x = rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32")
    y = (np.arange(batch) % domains)[::-1].astype("int32").copy()
    z = rng.standard_normal((batch, latent)).astype("float32")
    x_t, y_t = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))), torch.from_numpy(y).long()
    with torch.no_grad():
        s_t = nets["mapping_network"](torch.from_numpy(z), y_t)
        s = s_t.numpy()
        return [("F", np.asarray(model.mapping_network(z, y)), s),
                ("E", np.asarray(model.style_encoder(x, y)), nets["style_encoder"](x_t, y_t).numpy()),
                ("D", np.asarray(model.discriminator(x, y)), nets["discriminator"](x_t, y_t).numpy()),
                ("G", np.asarray(model.generator(x, s)), nets["generator"](x_t, s_t).permute(0, 2, 3, 1).numpy())]


def v1_files(config, directory, seed: int = 0):
    """(reference networks, {step}-G.ckpt, {step}-D.ckpt) of `config`'s networks."""
    from tests.references.torch_stargan_v1 import build_networks_like, save_authors_checkpoints

    nets = build_networks_like(config.model, seed=seed)
    directory.mkdir(parents=True, exist_ok=True)
    generator, discriminator = save_authors_checkpoints(nets, directory)
    return nets, generator, discriminator


def v1_outputs(nets, model, rng, batch: int = 3):
    """(what, ours, the reference's) of G and D's two heads on random inputs."""
    import torch

    from tests.references.torch_stargan_v1 import nchw

    size, width = model.config.model.image_size, model.config.model.label_dim
    x = rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32")
    c = rng.integers(0, 2, (batch, width)).astype("float32")
    with torch.no_grad():
        want = nets["generator"](nchw(x), torch.from_numpy(c)).numpy().transpose(0, 2, 3, 1)
        src_want, cls_want = nets["discriminator"](nchw(x))
    src, cls = model.discriminator(x)
    return [("G", np.asarray(model.translate(x, c)), want),
            ("D source", np.asarray(src), src_want.numpy().transpose(0, 2, 3, 1)),
            ("D classes", np.asarray(cls), cls_want.numpy())]
