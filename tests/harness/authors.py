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


def _float64(nets: dict) -> dict:
    return {name: net.double() for name, net in nets.items()}


def _one_thread(run):
    """Run the PyTorch reference on one thread: beside TensorFlow's pool, more make these tiny networks slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run()
    finally:
        torch.set_num_threads(threads)


def v2_iterations(config, batches, seed: int, run: dict):
    """The reference's iterations in float64 from `v2_files`' networks, with the harness's literal settings
    (`tests.harness.v2`): (logs per iteration, weights before the first and after each)."""
    from tests.harness.v2 import ADAM, DS_ITER, LAMBDA_DS, LAMBDAS
    from tests.references import torch_training as ref
    from tests.references.torch_stargan_v2 import build_networks_like

    def iterate():
        nets = _float64(build_networks_like(config.model, seed=seed))
        snapshots = []
        logs = ref.train(nets, ref.ema_copies(nets), ref.make_optimizers(nets, **ADAM), batches, lambda_ds0=LAMBDA_DS,
                         ds_iter=DS_ITER, snapshots=snapshots, **LAMBDAS)
        return logs, snapshots

    return _one_thread(iterate)


def v1_iterations(config, batches, seed: int, run: dict):
    """The reference's iterations in float64 from `v1_files`' networks, with the harness's literal settings
    (`tests.harness.v1`), iteration i updating G when (i + 1) % run["n_critic"] == 0: (logs per iteration,
    weights before the first and after each)."""
    import torch

    from tests.harness.v1 import ADAM, LAMBDAS, reference_labels
    from tests.references import torch_stargan_v1 as ref

    def iterate():
        nets = _float64(ref.build_networks_like(config.model, seed=seed))
        optims = ref.make_optimizers(nets, **ADAM)
        snapshots, logs = [ref.weights(nets)], []
        for i, batch in enumerate(batches):
            logs.append(ref.train_iteration(nets, optims, batch, (i + 1) % run["n_critic"] == 0, **LAMBDAS,
                                            labels=reference_labels(config.model), dtype=torch.float64))
            snapshots.append(ref.weights(nets))
        return logs, snapshots

    return _one_thread(iterate)
