"""StarGAN v1's joint training on two datasets (the authors' `train_multi`): network widths, the per-dataset
classification slices, and iterations against the independent PyTorch reference."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tests.harness.components import require

torch = require("torch")

from stargan_keras.v1.config import Config  # noqa: E402
from stargan_keras.v1.losses import dataset_classification_loss  # noqa: E402
from stargan_keras.v1.networks import build_networks  # noqa: E402
from stargan_keras.v1.trainer import LOG_KEYS, StarGANv1  # noqa: E402
from tests.references import torch_stargan_v1 as ref  # noqa: E402
from tests.harness.checks import assert_close_logs  # noqa: E402
from tests.harness.v1 import ADAM, LAMBDAS, make_tiny_v1_config, reference_labels  # noqa: E402

D_KEYS = [key for key in LOG_KEYS if key.startswith("D/")]
JOINT_RTOL = 3e-6  # of each reference loss term; measured 3.2e-7 (D/loss_real)


def _joint_config(**overrides):
    """Tiny networks, 3 attributes of the first dataset and 4 classes of the second."""
    fields = dict(c_dim=3, c2_dim=4, selected_attrs=["a", "b", "c", "w", "x", "y", "z"], n_critic=1)
    return make_tiny_v1_config(**{**fields, **overrides})


def _joint_batch(v1, dataset, size=4, seed=0):
    """One dataset's batch in G's layout: [attributes, zeros, 1, 0] or [zeros, one-hot class, 0, 1]."""
    rng = np.random.default_rng(seed)
    own = (rng.integers(0, 2, (size, v1.c_dim)) if dataset == 0
           else np.eye(v1.c2_dim)[rng.integers(0, v1.c2_dim, size)])
    c_org = np.zeros((size, v1.label_dim), np.float32)
    start = 0 if dataset == 0 else v1.c_dim
    c_org[:, start:start + own.shape[1]] = own
    c_org[:, v1.num_classes + dataset] = 1
    return dict(x_real=rng.uniform(-1, 1, (size, v1.image_size, v1.image_size, 3)).astype("float32"),
                c_org=c_org, c_trg=c_org[rng.permutation(size)], alpha=rng.uniform(0, 1, size).astype("float32"))


def test_widths_and_parameters_are_the_authors_for_celeba_and_rafd():
    """G takes 5 + 8 + 2 = 15 labels, D classifies 5 + 8: parameter counts equal the reference modules'."""
    v1 = Config().replace(c2_dim=8, selected_attrs=[]).model
    assert (v1.label_dim, v1.num_classes) == (15, 13)
    nets = build_networks(v1)
    reference = ref.build_networks_like(v1)
    for name, network in nets.items():
        assert network.count_params() == sum(p.numel() for p in reference[name].parameters()), name
    assert nets.generator.c_dim == 15 and nets.discriminator.c_dim == 13


def test_each_example_is_classified_with_its_own_datasets_slice():
    v1 = _joint_config().model
    rng = np.random.default_rng(1)
    for dataset in (0, 1):
        batch = _joint_batch(v1, dataset, size=5, seed=dataset)
        logits = rng.normal(size=(5, v1.num_classes)).astype(np.float32)
        ours = dataset_classification_loss(tf.constant(logits), tf.constant(batch["c_org"]), v1.label_slices)
        expected = ref._dataset_classification(torch.from_numpy(logits), torch.from_numpy(batch["c_org"]),
                                               reference_labels(v1), dataset)  # the authors' batch mean
        assert float(tf.reduce_mean(ours)) == pytest.approx(float(expected), rel=1e-5)
    mixed = np.concatenate([_joint_batch(v1, 0, size=2)["c_org"], _joint_batch(v1, 1, size=3)["c_org"]])
    logits = rng.normal(size=(5, v1.num_classes)).astype(np.float32)
    per_example = dataset_classification_loss(tf.constant(logits), tf.constant(mixed), v1.label_slices).numpy()
    for i, dataset in enumerate([0, 0, 1, 1, 1]):
        one = ref._dataset_classification(torch.from_numpy(logits[i:i + 1]), torch.from_numpy(mixed[i:i + 1]),
                                          reference_labels(v1), dataset)
        assert per_example[i] == pytest.approx(float(one), rel=1e-5)


def test_joint_iterations_match_the_reference(tmp_path):
    """A CelebA-like batch then a RaFD-like one, each a D and G update, from the same weights."""
    config = _joint_config(**ADAM, **LAMBDAS)
    v1 = config.model
    batches = [_joint_batch(v1, 0, seed=2), _joint_batch(v1, 1, seed=3)]
    nets = ref.build_networks_like(v1)
    authors_files = ref.save_authors_checkpoints(nets, tmp_path)
    optims = ref.make_optimizers(nets, **ADAM)
    expected = [ref.train_iteration(nets, optims, batch, True, **LAMBDAS, labels=reference_labels(v1), dataset=i)
                for i, batch in enumerate(batches)]
    model = StarGANv1(config)
    model.compile(run_eagerly=True)
    model.load_authors_weights(*authors_files)
    for batch, want in zip(batches, expected):
        assert_close_logs(model.distributed_train_step(batch), want, rtol=JOINT_RTOL)


def test_g_updates_on_both_steps_of_every_n_critic_th_iteration():
    """An iteration is one step per dataset: with n_critic 2, steps 0-1 update D only, steps 2-3 G too."""
    config = _joint_config(n_critic=2)
    model = StarGANv1(config)
    model.compile(run_eagerly=True)
    kinds = []
    for step in range(6):
        logs = model.distributed_train_step(_joint_batch(config.model, step % 2, seed=step))
        kinds.append("G/loss_fake" in logs)
        assert set(logs) == set(LOG_KEYS if kinds[-1] else D_KEYS)
    assert kinds == [False, False, True, True, False, False]
