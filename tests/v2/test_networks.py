"""The four networks: exact sizes, the authors' initialisation, every image size, dtype policies, saving."""

import math

import keras
import numpy as np
import pytest

from stargan_keras.core.layers import torch_named_variables
from stargan_keras.v2.networks import Discriminator, Generator, MappingNetwork, StyleEncoder, build_networks

# Counted on the authors' PyTorch modules at 256 px (clovaai/stargan-v2 `core/model.py` `build_model`).
PUBLISHED_COUNTS = {
    (3, 0.0): dict(generator=33_892_995, mapping_network=3_259_072, style_encoder=20_949_760,
                   discriminator=20_852_803),
    (2, 1.0): dict(generator=43_467_395, mapping_network=2_438_272, style_encoder=20_916_928,
                   discriminator=20_852_290),
}


def _full_size_networks(num_domains, w_hpf):
    """The paper's networks at 256 px, built by symbolic calls (no 97-GFLOP forward pass)."""
    nets = dict(generator=Generator(256, 64, 512, w_hpf), mapping_network=MappingNetwork(16, 64, num_domains, 512),
                style_encoder=StyleEncoder(256, 64, num_domains, 512),
                discriminator=Discriminator(256, num_domains, 512))
    for net in nets.values():
        net(*net.symbolic_inputs())
    return nets


@pytest.fixture(scope="module")
def afhq_networks():
    return _full_size_networks(3, 0.0)


@pytest.mark.slow
def test_parameter_counts_at_256_match_the_paper(afhq_networks):
    counts = {name: net.count_params() for name, net in afhq_networks.items()}
    assert counts == PUBLISHED_COUNTS[(3, 0.0)]
    celeba = _full_size_networks(2, 1.0)
    assert {name: net.count_params() for name, net in celeba.items()} == PUBLISHED_COUNTS[(2, 1.0)]


@pytest.fixture(scope="module")
def wide_small_networks():
    """The four networks at 32 px from 256 channels: the same layer kinds as at 256 px and the paper's 512-wide
    bottleneck and mapping layers, with half the parameters to initialise."""
    nets = dict(generator=Generator(32, 64, 512, 0.0, base_dim=256), mapping_network=MappingNetwork(16, 64, 3, 512),
                style_encoder=StyleEncoder(32, 64, 3, 512, base_dim=256),
                discriminator=Discriminator(32, 3, 512, base_dim=256))
    for net in nets.values():
        net(*net.symbolic_inputs())
    return nets


def test_initialisation_is_untruncated_he_normal_with_zero_biases(wide_small_networks):
    variables = torch_named_variables(wide_small_networks["generator"])
    kernel = np.asarray(variables["encode.1.conv1.weight"])  # 3x3x512x512 bottleneck conv
    assert kernel.shape == (3, 3, 512, 512)
    std = math.sqrt(2.0 / (3 * 3 * 512))
    assert abs(kernel.std() / std - 1) < 0.05
    assert abs(kernel.mean()) < 0.01 * std
    # An untruncated normal puts 4.55% of its mass beyond 2 sigma; Keras' truncated one puts none there.
    assert 0.04 < np.mean(np.abs(kernel) > 2 * std) < 0.051
    dense_kernel = np.asarray(torch_named_variables(wide_small_networks["mapping_network"])["shared.2.weight"])
    assert abs(dense_kernel.std() / math.sqrt(2.0 / 512) - 1) < 0.05
    for name, net in wide_small_networks.items():
        for key, variable in torch_named_variables(net).items():
            value = np.asarray(variable)
            if key.endswith(".bias"):
                assert not value.any(), f"{name}.{key} should start at zero"
            elif key == "to_rgb.0.weight" or (".norm" in key and ".fc." not in key and key.endswith(".weight")):
                assert np.all(value == 1.0), f"{name}.{key} (instance-norm gamma) should start at one"


@pytest.fixture(scope="module")
def narrow_model(tiny_config):
    """The tiny config's 32 px networks with w_hpf 1, two domains and every width narrower still."""
    return tiny_config(num_domains=2, w_hpf=1.0, base_dim=4, max_conv_dim=8, style_dim=8, latent_dim=4,
                       mapping_hidden_dim=8).model


@pytest.mark.parametrize("img_size", [16, 32, 64, *(pytest.param(size, marks=pytest.mark.slow) for size in (128, 256, 512))])
def test_every_image_size_gives_the_right_shapes(img_size):
    rng = np.random.default_rng(img_size)
    x = rng.uniform(-1, 1, (1, img_size, img_size, 3)).astype("float32")
    y = np.array([2], "int32")
    s = rng.standard_normal((1, 8)).astype("float32")
    masks = [rng.uniform(0, 1, (1, img_size, img_size, 1)).astype("float32")] * 2
    assert StyleEncoder(img_size, 8, 3, 8, base_dim=4)(x, y).shape == (1, 8)
    assert Discriminator(img_size, 3, 8, base_dim=4)(x, y).shape == (1,)
    for w_hpf in (0.0, 1.0):
        out = Generator(img_size, 8, 8, w_hpf, base_dim=4)(x, s, masks=masks)
        assert out.shape == (1, img_size, img_size, 3)
        assert np.isfinite(np.asarray(out)).all()


def test_mapping_network_picks_the_head_of_each_domain():
    f = MappingNetwork(latent_dim=4, style_dim=8, num_domains=3, hidden_dim=8)
    z = np.random.default_rng(0).standard_normal((3, 4)).astype("float32")
    mixed = np.asarray(f(z, np.array([2, 0, 1], "int32")))
    assert mixed.shape == (3, 8)
    for row, domain in enumerate([2, 0, 1]):
        np.testing.assert_allclose(mixed[row], np.asarray(f(z, np.full(3, domain, "int32")))[row], rtol=1e-6)


def test_generator_depth_follows_w_hpf():
    """w_hpf > 0 adds one down/up level (the authors' `core/model.py` `Generator`: log2(img) - 4, +1 with w_hpf)."""
    for w_hpf, levels in ((0.0, 2), (1.0, 3)):
        g = Generator(64, 8, 8, w_hpf, base_dim=4)
        assert sum(block.downsample for block in g.encode) == levels
        assert len(g.encode) == len(g.decode) == levels + 2


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_dtype_policies_give_finite_outputs_and_float32_styles_and_logits(narrow_model, policy):
    keras.config.set_dtype_policy(policy)
    nets = build_networks(narrow_model)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    y = np.array([0, 1], "int32")
    s = nets.mapping_network(rng.standard_normal((2, 4)).astype("float32"), y)
    e = nets.style_encoder(x, y)
    d = nets.discriminator(x, y)
    masks = [rng.uniform(0, 1, (2, 32, 32, 1)).astype("float32")] * 2
    g = nets.generator(x, s, masks=masks)
    for name, out in (("F", s), ("E", e), ("D", d), ("G", g)):
        assert out.dtype == "float32", f"{name} under {policy} returns {out.dtype}"
        assert np.isfinite(np.asarray(out)).all(), f"{name} under {policy} is not finite"
    compute = keras.mixed_precision.dtype_policy().compute_dtype
    assert nets.generator.encode[0].conv1.compute_dtype == compute


def _outputs(nets, x, y, s):
    return [np.asarray(v) for v in (nets["generator"](x, s), nets["mapping_network"](np.ones((2, 4), "float32"), y),
                                    nets["style_encoder"](x, y), nets["discriminator"](x, y))]


@pytest.mark.slow
def test_keras_and_weights_files_round_trip(tmp_path, narrow_model):
    nets = dict(build_networks(narrow_model).items())
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    y = np.array([1, 0], "int32")
    s = rng.standard_normal((2, 8)).astype("float32")
    expected = _outputs(nets, x, y, s)

    reloaded = {}
    for name, net in nets.items():
        net.save(tmp_path / f"{name}.keras")
        net.save_weights(tmp_path / f"{name}.weights.h5")
        reloaded[name] = keras.saving.load_model(tmp_path / f"{name}.keras")
        assert reloaded[name].get_config() == net.get_config()
    for want, got in zip(expected, _outputs(reloaded, x, y, s)):
        np.testing.assert_array_equal(got, want)

    for name, net in reloaded.items():
        for variable in net.weights:
            variable.assign(np.zeros(variable.shape, variable.dtype))
        net.load_weights(tmp_path / f"{name}.weights.h5")
    for want, got in zip(expected, _outputs(reloaded, x, y, s)):
        np.testing.assert_array_equal(got, want)
