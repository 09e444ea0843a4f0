"""StarGAN v1's networks against an independent PyTorch reference, through the authors' checkpoint layout."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.harness.components import require

torch = require("torch")

from stargan_keras.core.torch_io import ConversionError  # noqa: E402
from stargan_keras.core.config import ConfigError  # noqa: E402
from stargan_keras.v1.config import ModelConfig  # noqa: E402
from stargan_keras.v2.config import Config as V2Config  # noqa: E402
from stargan_keras.v1.convert import convert_checkpoint, load_checked  # noqa: E402
from stargan_keras.v1.networks import build_networks  # noqa: E402
from tests.references.torch_stargan_v1 import build_networks_like, nchw, save_authors_checkpoints  # noqa: E402
from tests.harness.checks import assert_converted  # noqa: E402
from tests.harness.v1 import make_tiny_v1_config, make_v1_batches  # noqa: E402

# The paper's networks (yunjey/stargan defaults): parameters of G by label width, of D by image size (c_dim 5).
PAPER_G_PARAMS = {5: 8_430_528, 8: 8_439_936, 15: 8_461_888}  # 15 = CelebA 5 + RaFD 8 + mask 2
PAPER_D_PARAMS = {128: 44_762_048, 256: 44_884_928}


def _symbolic_count(network) -> int:
    network(*network.symbolic_inputs())  # builds the weights without computing anything
    return network.count_params()


@pytest.mark.parametrize("c_dim", sorted(PAPER_G_PARAMS))
def test_generator_parameters_equal_the_papers(c_dim):
    from stargan_keras.v1.networks import Generator

    assert _symbolic_count(Generator(64, c_dim, 6, 128)) == PAPER_G_PARAMS[c_dim]


@pytest.mark.parametrize("image_size", sorted(PAPER_D_PARAMS))
def test_discriminator_parameters_equal_the_papers(image_size):
    from stargan_keras.v1.networks import Discriminator

    assert _symbolic_count(Discriminator(image_size, 64, 5, 6)) == PAPER_D_PARAMS[image_size]


def _outputs_match(config, tmp_path, seed=0):
    """Reference networks -> the authors' files -> converted; G's and D's outputs on the same inputs."""
    ref = build_networks_like(config.model, seed=seed)
    g_path, d_path = save_authors_checkpoints(ref, tmp_path)
    nets = build_networks(config.model)
    load_checked(nets, config, g_path, d_path)
    batch = make_v1_batches(1, config.model, size=3, seed=seed)[0]
    x, c = batch["x_real"], batch["c_trg"]
    with torch.no_grad():
        g_ref = ref["generator"](nchw(x), torch.from_numpy(c)).numpy().transpose(0, 2, 3, 1)
        src_ref, cls_ref = ref["discriminator"](nchw(x))
    assert_converted(nets.generator(x, c), g_ref, "G")
    src, cls = nets.discriminator(x)
    assert src.shape == (3, config.model.image_size // 2 ** config.model.d_repeat_num,
                         config.model.image_size // 2 ** config.model.d_repeat_num, 1)
    assert cls.shape == (3, config.model.c_dim)
    assert_converted(src, src_ref.numpy().transpose(0, 2, 3, 1), "D source")
    assert_converted(cls, cls_ref.numpy(), "D classes")
    return ref, nets, batch


def test_converted_authors_layout_gives_the_reference_outputs(tmp_path):
    """G (with the norms' running buffers perturbed: they must not matter) and D within 1e-4."""
    config = make_tiny_v1_config()
    ref, _, batch = _outputs_match(config, tmp_path)
    # What the buffers would do in PyTorch's eval mode, which the authors never use: different outputs.
    ref["generator"].eval()
    with torch.no_grad():
        eval_out = ref["generator"](nchw(batch["x_real"]), torch.from_numpy(batch["c_trg"])).numpy()
    ref["generator"].train()
    with torch.no_grad():
        train_out = ref["generator"](nchw(batch["x_real"]), torch.from_numpy(batch["c_trg"])).numpy()
    assert np.abs(eval_out - train_out).max() > 1e-2


def test_any_size_divisible_by_the_discriminators_stride_and_any_label_width(tmp_path):
    """48 px with four stride-2 convs (a 3x3 head), seven labels."""
    config = make_tiny_v1_config(image_size=48, d_repeat_num=4, c_dim=7, selected_attrs=[])
    _outputs_match(config, tmp_path, seed=1)


def test_image_size_must_fit_the_discriminators_head():
    with pytest.raises(ConfigError, match="divisible by 2\\*\\*d_repeat_num = 8"):
        ModelConfig(image_size=36, d_repeat_num=3, c_dim=5).validate()


def test_mismatched_checkpoint_names_keys_shapes_and_the_flag(tmp_path):
    config = make_tiny_v1_config()
    ref = build_networks_like(dataclasses.replace(config.model, c_dim=5, selected_attrs=[]))
    g_path, d_path = save_authors_checkpoints(ref, tmp_path)
    nets = build_networks(config.model)
    before = [np.asarray(v).copy() for v in nets.generator.weights]
    with pytest.raises(ConversionError) as info:
        load_checked(nets, config, g_path, d_path)
    message = str(info.value)
    assert "main.0.weight expected shape (8, 7, 7, 7), found (8, 8, 7, 7)" in message
    assert "conv2.weight expected shape (4, 32, 4, 4), found (5, 32, 4, 4)" in message
    assert "the checkpoint has c_dim 5, the config says --c-dim 4" in message
    assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(before, nets.generator.weights))


def test_code_carrying_and_wrong_files_are_refused(tmp_path):
    config = make_tiny_v1_config()
    ref = build_networks_like(config.model)
    whole_module = tmp_path / "200000-G.ckpt"
    torch.save(ref["generator"], whole_module)  # a pickled module: needs code to load
    nets = build_networks(config.model, with_discriminator=False)
    with pytest.raises(ConversionError, match="refused"):
        load_checked(nets, config, whole_module)
    not_a_dict = tmp_path / "list.ckpt"
    torch.save([torch.zeros(1)], not_a_dict)
    with pytest.raises(ConversionError, match="not the state dict of a StarGAN generator"):
        load_checked(nets, config, not_a_dict)


def test_convert_writes_a_v1_model_directory(tmp_path):
    config = make_tiny_v1_config()
    ref = build_networks_like(config.model)
    g_path, d_path = save_authors_checkpoints(ref, tmp_path)
    lines = []
    out = convert_checkpoint(g_path, config, tmp_path / "model", discriminator_path=d_path, log=lines.append)
    assert (out / "config.yaml").exists() and (out / "generator.weights.h5").exists()
    assert (out / "discriminator.weights.h5").exists()
    fresh = build_networks(config.model)
    fresh.generator.load_weights(out / "generator.weights.h5")
    x = make_v1_batches(1, config.model, size=2)[0]
    with torch.no_grad():
        want = ref["generator"](nchw(x["x_real"]), torch.from_numpy(x["c_trg"])).numpy().transpose(0, 2, 3, 1)
    assert_converted(fresh.generator(x["x_real"], x["c_trg"]), want, "G from its weights file")
    with pytest.raises(ConversionError, match="needs a v1 config"):
        convert_checkpoint(g_path, V2Config(), tmp_path / "other")


def test_v1_classes_do_not_replace_the_v2_ones_in_keras_registry():
    import keras

    from stargan_keras.v2 import networks as v2
    from stargan_keras.v1 import networks as v1

    assert keras.saving.get_registered_object("stargan_keras>Generator") is v2.Generator
    assert keras.saving.get_registered_object("stargan_keras.v1>Generator") is v1.Generator
