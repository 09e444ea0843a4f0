"""The converter: outputs equal an independent PyTorch reference, and bad checkpoints fail clearly, writing nothing."""

import os
import sys

import numpy as np
import pytest

from tests.harness.components import require

torch = require("torch")
torch.set_num_threads(1)  # beside TensorFlow's thread pool, torch's own makes these tiny networks much slower

import stargan_keras  # noqa: E402
from stargan_keras.core.torch_io import ConversionError  # noqa: E402
from stargan_keras.v2.convert import convert_checkpoint  # noqa: E402
from stargan_keras.core.config import ConfigError  # noqa: E402
from stargan_keras.convert import main  # noqa: E402
from tests.harness.checks import assert_converted  # noqa: E402
from tests.references.torch_stargan_v2 import build_networks_like, save_upstream_checkpoints  # noqa: E402

NARROW_STYLES = dict(style_dim=16, latent_dim=8)  # the tiny config keeps the paper's 64 and 16
BATCH = 3


@pytest.fixture(scope="module")
def narrow_config(tiny_config):
    """`narrow_config(img_size, num_domains, w_hpf, **overrides)`: the tiny networks with narrow styles and latents."""

    def make(img_size, num_domains, w_hpf, **overrides):
        return tiny_config(img_size=img_size, num_domains=num_domains, w_hpf=w_hpf, **{**NARROW_STYLES, **overrides})

    return make


def _quiet(_message):
    pass


@pytest.fixture(scope="module")
def small_checkpoints(tmp_path_factory, narrow_config):
    """Upstream-layout checkpoints of a 32 px, 3-domain, w_hpf 0 reference model."""
    directory = tmp_path_factory.mktemp("upstream32")
    return save_upstream_checkpoints(build_networks_like(narrow_config(32, 3, 0.0).model), directory)


@pytest.fixture(scope="module")
def wing_checkpoint(tmp_path_factory):
    """A FAN of random weights in the layout of the authors' wing.ckpt."""
    from tests.references import torch_fan

    return torch_fan.save_wing_checkpoint(torch_fan.randomize(torch_fan.TorchFAN()),
                                          tmp_path_factory.mktemp("fan") / "wing.ckpt")


def _nchw(x):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def _assert_close(keras_out, torch_out, what):
    assert_converted(keras_out, torch_out.detach().numpy(), what)


def _drop_hpf_filter(ema_path):
    """The released CelebA-HQ checkpoint has no `hpf.filter` (upstream issue #103): it is a constant of w_hpf."""
    state = torch.load(ema_path, weights_only=True)
    assert "hpf.filter" in state["generator"]
    del state["generator"]["hpf.filter"]
    torch.save(state, ema_path)


@pytest.mark.parametrize("img_size,num_domains,w_hpf,drop_hpf_filter",
                         [(32, 2, 1.0, True), *(pytest.param(*case, marks=pytest.mark.slow)  # one fast: the mask path
                                                for case in ((32, 3, 0.0, False), (64, 2, 0.0, False), (64, 3, 1.0, False)))])
def test_converted_networks_match_the_pytorch_reference(tmp_path, narrow_config, wing_checkpoint, img_size,
                                                        num_domains, w_hpf, drop_hpf_filter):
    converted_config = narrow_config(img_size, num_domains, w_hpf)
    if w_hpf > 0:  # the CelebA-HQ generator converts with the FAN behind its masks
        converted_config = converted_config.replace(fan_checkpoint=str(wing_checkpoint))
    nets = build_networks_like(converted_config.model, seed=img_size + num_domains)
    nets_path, ema_path = save_upstream_checkpoints(nets, tmp_path / "upstream")
    if drop_hpf_filter:
        _drop_hpf_filter(ema_path)
    output = convert_checkpoint(ema_path, converted_config, tmp_path / "converted",
                                discriminator_path=nets_path, log=_quiet)
    model = stargan_keras.load(output)

    rng = np.random.default_rng(img_size)
    x = rng.uniform(-1, 1, (BATCH, img_size, img_size, 3)).astype("float32")
    y = (np.arange(BATCH) % num_domains)[::-1].astype("int32").copy()
    z = rng.standard_normal((BATCH, converted_config.model.latent_dim)).astype("float32")
    x_t, y_t = _nchw(x), torch.from_numpy(y).long()
    with torch.no_grad():
        s_t = nets["mapping_network"](torch.from_numpy(z), y_t)
        _assert_close(model.mapping_network(z, y), s_t, "F")
        _assert_close(model.style_encoder(x, y), nets["style_encoder"](x_t, y_t), "E")
        _assert_close(model.discriminator(x, y), nets["discriminator"](x_t, y_t), "D")
        s = s_t.numpy()
        _assert_close(model.generator(x, s), nets["generator"](x_t, s_t).permute(0, 2, 3, 1), "G")
        if w_hpf > 0:
            masks = [rng.uniform(0, 1, (BATCH, img_size, img_size, 1)).astype("float32") for _ in range(2)]
            with_masks = nets["generator"](x_t, s_t, masks=[_nchw(m) for m in masks])
            assert not torch.allclose(with_masks, nets["generator"](x_t, s_t), atol=1e-2)
            _assert_close(model.generator(x, s, masks=masks), with_masks.permute(0, 2, 3, 1), "G with masks")


def test_command_line_converts_and_load_returns_the_networks(tmp_path, narrow_config, small_checkpoints, capsys):
    _, ema_path = small_checkpoints
    yaml_path = tmp_path / "small.yaml"
    narrow_config(32, 1, 0.0, domain_names=["only"]).save(yaml_path)
    output = tmp_path / "model"
    status = main(["--pytorch-checkpoint", str(ema_path), "--config", str(yaml_path), "--num-domains", "3",
                   "--domain-names", "cat,dog,wild", "--output", str(output)])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    assert "generator" in printed.out and str(output) in printed.out
    model = stargan_keras.load(output)
    assert model.discriminator is None
    assert model.config.model.num_domains == 3
    assert model.config.model.domain_names == ["cat", "dog", "wild"]
    assert model.style_encoder(np.zeros((2, 32, 32, 3), "float32"), np.array([0, 2], "int32")).shape == (2, 16)

    assert main(["--pytorch-checkpoint", str(ema_path), "--config", str(yaml_path), "--output",
                 str(tmp_path / "bad")]) == 2  # a user error (stargan_keras.core.errors)
    assert "--num-domains 1" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def _expect_refusal(tmp_path, ema_path, config, *messages, discriminator_path=None):
    output = tmp_path / "converted"
    with pytest.raises(ConversionError) as info:
        convert_checkpoint(ema_path, config, output, discriminator_path=discriminator_path, log=_quiet)
    for message in messages:
        assert message in str(info.value)
    assert not output.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".converted")], "staging files left behind"
    return str(info.value)


class _RunsCode:
    """Unpickling this object would create the marker directory."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_checkpoint_carrying_code_is_refused_without_running_it(tmp_path, narrow_config):
    marker = tmp_path / "code_ran"
    path = tmp_path / "100000_nets_ema.ckpt"
    torch.save({"generator": _RunsCode(marker), "mapping_network": {}, "style_encoder": {}}, path)
    message = _expect_refusal(tmp_path, path, narrow_config(32, 3, 0.0), str(path), "may carry code", "on purpose")
    assert "weights_only" in message
    assert not marker.exists()


def test_wrong_domain_count_names_keys_and_flag(tmp_path, narrow_config, small_checkpoints):
    nets_path, ema_path = small_checkpoints
    message = _expect_refusal(tmp_path, ema_path, narrow_config(32, 2, 0.0), str(ema_path),
                              "unshared.2.0.weight unexpected", "the checkpoint has 3 domains",
                              "--num-domains 2", discriminator_path=nets_path)
    message = _expect_refusal(tmp_path, ema_path, narrow_config(32, 4, 0.0),
                              "unshared.3.0.weight missing (expected shape", "--num-domains 4")
    assert "3 domains" in message


def test_truncated_file_is_named(tmp_path, narrow_config, small_checkpoints):
    _, ema_path = small_checkpoints
    truncated = tmp_path / "100000_nets_ema.ckpt"
    data = ema_path.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    _expect_refusal(tmp_path, truncated, narrow_config(32, 3, 0.0), str(truncated), "truncated or corrupt", "again")
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    _expect_refusal(tmp_path, empty, narrow_config(32, 3, 0.0), str(empty), "empty")
    html = tmp_path / "dropbox.ckpt"
    html.write_text("<!DOCTYPE html><html>Dropbox</html>")
    _expect_refusal(tmp_path, html, narrow_config(32, 3, 0.0), str(html), "dl=1")


def test_wrong_w_hpf_names_the_flag(tmp_path, narrow_config, small_checkpoints, wing_checkpoint):
    _, ema_path = small_checkpoints
    with pytest.raises(ConfigError, match="--fan-checkpoint wing.ckpt"):  # a w_hpf > 0 model needs its FAN
        convert_checkpoint(ema_path, narrow_config(32, 3, 1.0), tmp_path / "converted", log=_quiet)
    config = narrow_config(32, 3, 1.0, fan_checkpoint=str(wing_checkpoint))
    _expect_refusal(tmp_path, ema_path, config, "generator: encode.", "expected shape",
                    "means w_hpf = 0", "--w-hpf 1")


def test_wrong_image_size_names_the_flag(tmp_path, narrow_config, small_checkpoints):
    _, ema_path = small_checkpoints
    _expect_refusal(tmp_path, ema_path, narrow_config(64, 3, 0.0), "generator: encode.", "i.e. 32 px images",
                    "--img-size 64")


def test_checkpoint_without_the_networks_is_named(tmp_path, narrow_config, small_checkpoints):
    nets_path, ema_path = small_checkpoints
    _expect_refusal(tmp_path, ema_path, narrow_config(32, 3, 0.0), str(ema_path), "no discriminator state dict",
                    discriminator_path=ema_path)
    wrong = tmp_path / "tensor.ckpt"
    torch.save(torch.zeros(3), wrong)
    _expect_refusal(tmp_path, wrong, narrow_config(32, 3, 0.0), str(wrong), "not the upstream dict")


def test_missing_torch_says_how_to_install_it(tmp_path, narrow_config, small_checkpoints, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    _expect_refusal(tmp_path, small_checkpoints[1], narrow_config(32, 3, 0.0), "pip install 'stargan-keras[torch]'")
