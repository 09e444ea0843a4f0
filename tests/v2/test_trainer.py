"""StarGAN v2's training with face masks against an independent PyTorch reference, its Adam, and resuming.

The checks every family passes the same way (iterations against the reference, mixed precision, replicas) are
`tests/test_families.py`'s.
"""

from __future__ import annotations


import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.harness.components import require

torch = require("torch")
torch.set_num_threads(1)  # beside TensorFlow's thread pool, torch's own makes the reference and its FAN slower

from stargan_keras.face.fan import load_fan_checkpoint  # noqa: E402
from stargan_keras.v2.losses import lambda_ds_at  # noqa: E402
from stargan_keras.v2.trainer import LOG_KEYS  # noqa: E402
from stargan_keras.core.trainer_base import TorchAdam  # noqa: E402
from tests.references import torch_fan  # noqa: E402
from tests.references import torch_training as ref  # noqa: E402
from tests.references.torch_stargan_v2 import build_networks_like, save_upstream_checkpoints  # noqa: E402
from tests.harness.v2 import ADAM, DS_ITER, LAMBDA_DS, LAMBDAS, build_model, make_batches  # noqa: E402
from tests.harness.checks import assert_close_logs  # noqa: E402

LOG_RTOL = 2e-5  # the face-mask iteration's logs against the reference; measured 1.7e-6



@pytest.fixture(scope="module")
def config(tiny_config):
    """The tiny networks (32 px, 3 domains, w_hpf 0: the AFHQ setting), a global batch of 4."""
    return tiny_config(batch_size=4, lambda_ds=2.0, ds_iter=10)


@pytest.fixture(scope="module")
def upstream_checkpoints(tmp_path_factory, config):
    directory = tmp_path_factory.mktemp("upstream")
    save_upstream_checkpoints(build_networks_like(config.model), directory)
    return directory


def _trained_model(config, upstream_checkpoints, run_eagerly=False):
    """The trainer starting from the reference networks' weights (the fixture's upstream checkpoints)."""
    return build_model(config, upstream_checkpoints / "100000_nets.ckpt",
                       upstream_checkpoints / "100000_nets_ema.ckpt", run_eagerly=run_eagerly)


@pytest.mark.slow
def test_one_iteration_with_face_masks_matches_the_pytorch_reference(tiny_config, tmp_path):
    """w_hpf = 1 with a FAN (the CelebA-HQ setting): G gets the masks of x_real in every pass but the cycle's,
    which gets those of x_fake; the loss terms show which masks the cycle took.

    64 px, so that G adds skips with both masks (32 and 64 px); a batch of 2, since each image costs both FANs a
    256 px pass three times per iteration (the FAN's input size whatever the image size). The step runs eagerly:
    which masks each pass takes does not depend on tracing, and tracing a step that holds the FAN three times
    costs more than the eager iteration (the compiled step's parity is tests/test_families.py's)."""
    config = tiny_config(img_size=64, num_domains=2, w_hpf=1.0, base_dim=4, max_conv_dim=16, batch_size=2,
                         lambda_ds=LAMBDA_DS, ds_iter=DS_ITER, **ADAM, **LAMBDAS)
    fan_t = torch_fan.randomize(torch_fan.TorchFAN(), seed=3)
    fan = load_fan_checkpoint(torch_fan.save_wing_checkpoint(fan_t, tmp_path / "wing.ckpt"))
    upstream = tmp_path / "upstream"
    save_upstream_checkpoints(build_networks_like(config.model), upstream)
    batch = make_batches(1, size=2, img_size=64, num_domains=2)[0]

    def reference(masks_of):
        nets = build_networks_like(config.model)
        return ref.train_iteration(nets, ref.ema_copies(nets), ref.make_optimizers(nets, **ADAM), batch,
                                   lambda_ds=LAMBDA_DS, masks_of=masks_of, **LAMBDAS)

    def authors_masks(x):
        return torch_fan.get_heatmap(fan_t, x)

    x_real = ref.to_torch({"x_src": batch["x_src"]})["x_src"]
    masks_real = authors_masks(x_real)
    assert all(0.02 < float((m > 0).float().mean()) < 0.98 for m in masks_real), "degenerate masks"
    expected = reference(authors_masks)
    cycle_on_real_masks = reference(lambda x: masks_real)
    no_masks = reference(None)

    model = build_model(config, upstream / "100000_nets.ckpt", upstream / "100000_nets_ema.ckpt", fan=fan,
                        run_eagerly=True)
    actual = model.distributed_train_step(batch)
    del actual["G/lambda_ds"]
    print("face-mask iteration: max relative log error "
          f"{max(abs(float(actual[k]) - v) / abs(v) for k, v in expected.items()):.1e}")
    assert_close_logs(actual, expected, rtol=LOG_RTOL)
    for key in ("G/latent_cyc", "G/ref_cyc"):
        for other in (cycle_on_real_masks, no_masks):
            assert abs(other[key] - expected[key]) > 10 * 1e-4 * abs(expected[key]), (key, other[key], expected[key])
    for key in ("D/latent_fake", "G/latent_adv", "G/ref_ds"):  # the passes on x_real's masks
        assert abs(no_masks[key] - expected[key]) > 10 * 1e-4 * abs(expected[key]), key


def test_torch_adam_matches_pytorch_adam_with_coupled_weight_decay():
    rng = np.random.default_rng(1)
    start = rng.normal(size=(5, 7)).astype("float32")
    grads = [rng.normal(size=(5, 7)).astype("float32") * 10.0 ** -k for k in range(4)]
    variable = keras.Variable(start)
    optimizer = TorchAdam(1e-2, 0.0, 0.99, 1e-8, l2=0.1)
    param = torch.nn.Parameter(torch.from_numpy(start.copy()))
    torch_optimizer = torch.optim.Adam([param], lr=1e-2, betas=(0.0, 0.99), eps=1e-8, weight_decay=0.1)
    for grad in grads:
        optimizer.apply_gradients([(tf.constant(grad), variable)])
        param.grad = torch.from_numpy(grad.copy())
        torch_optimizer.step()
    # measured: max |diff| 6.0e-8, max relative 7.2e-7
    np.testing.assert_allclose(np.asarray(variable), param.detach().numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_fit_then_resume_from_checkpoint_continues_identically(config, upstream_checkpoints, tmp_path):
    """fit() drives train_step; a restored checkpoint continues the run (and the lambda_ds decay) exactly."""
    model = _trained_model(config, upstream_checkpoints, run_eagerly=True)
    batches = make_batches(3)
    dataset = tf.data.Dataset.from_tensor_slices({k: np.concatenate([b[k] for b in batches[:2]]) for k in batches[0]})
    seen = []
    callback = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(dict(logs)))
    model.fit(dataset.batch(4).repeat(), epochs=1, steps_per_epoch=2, callbacks=[callback], verbose=0, shuffle=False)
    assert len(seen) == 2 and set(LOG_KEYS) <= set(seen[-1])
    assert int(model.step.numpy()) == 2
    assert seen[-1]["G/lambda_ds"] == pytest.approx(2.0 * (1 - 2 / 10))
    path = model.checkpoint().save(str(tmp_path / "ckpt"))

    restored = _trained_model(config, upstream_checkpoints, run_eagerly=True)
    restored.checkpoint().restore(path).assert_consumed()
    assert int(restored.step.numpy()) == 2
    resumed = restored.distributed_train_step(batches[2])
    continued = model.distributed_train_step(batches[2])
    assert float(resumed["G/lambda_ds"]) == pytest.approx(2.0 * (1 - 3 / 10))
    for key in LOG_KEYS:
        assert float(resumed[key]) == float(continued[key]), key
    for a, b in zip(restored.nets_ema.generator.weights, model.nets_ema.generator.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert float(lambda_ds_at(12, 2.0, 10)) == 0.0
