"""StarGAN v1's section of the one typed config: defaults, presets' YAML, flags and checks."""

from __future__ import annotations

import argparse

import pytest
import yaml

from stargan_keras.core.config import Config, ConfigError, V1Config, add_config_flags, overrides_from_args


def test_defaults_are_the_papers():
    v1 = V1Config()
    assert (v1.image_size, v1.c_dim, v1.g_conv_dim, v1.d_conv_dim, v1.g_repeat_num, v1.d_repeat_num) == (
        128, 5, 64, 64, 6, 6)
    assert (v1.lambda_cls, v1.lambda_rec, v1.lambda_gp, v1.n_critic) == (1.0, 10.0, 10.0, 5)
    assert (v1.g_lr, v1.d_lr, v1.beta1, v1.beta2) == (1e-4, 1e-4, 0.5, 0.999)
    assert v1.selected_attrs == ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
    assert (v1.lr_decay, v1.num_iters_decay) == ("linear", 100_000)
    assert Config().model_family == "v2"


def test_a_v1_config_round_trips_and_a_v2_file_has_no_v1_section():
    config = Config.from_dict({"model_family": "v1", "v1": {"c_dim": 8, "selected_attrs": [], "label_type":
                                                            "categorical"}, "train": {"batch_size": 16}})
    assert config.validate().v1.c_dim == 8 and config.train.batch_size == 16
    saved = yaml.safe_load(config.to_yaml())
    assert "model" not in saved and saved["model_family"] == "v1"
    assert Config.from_dict(saved) == config
    assert "v1" not in yaml.safe_load(Config().to_yaml())


def test_flags_reach_the_v1_section():
    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    args = parser.parse_args(["--model-family", "v1", "--c-dim", "3", "--selected-attrs", "a,b,c",
                              "--lambda-gp", "5"])
    config = Config().replace(**overrides_from_args(args)).validate()
    assert (config.model_family, config.v1.c_dim, config.v1.selected_attrs, config.v1.lambda_gp) == (
        "v1", 3, ["a", "b", "c"], 5.0)


@pytest.mark.parametrize("overrides, message", [
    (dict(model_family="v3"), "--model-family 'v3'"),
    (dict(model_family="v1", c_dim=8), "--selected-attrs has 5 names"),
    (dict(model_family="v1", image_size=96), "--image-size 96: must be divisible by 2\\*\\*d_repeat_num = 64"),
    (dict(model_family="v1", label_type="binary"), "--label-type 'binary'"),
    (dict(model_family="v1", lr_decay="cosine"), "--lr-decay 'cosine'"),
    (dict(model_family="v1", c2_dim=8), "--selected-attrs has 5 names .* but --c-dim \\+ --c2-dim is 5 \\+ 8"),
    (dict(model_family="v1", rafd_crop_size=-1), "--rafd-crop-size -1: must be 0 or more"),
])
def test_bad_values_name_the_flag(overrides, message):
    with pytest.raises(ConfigError, match=message):
        Config().replace(**overrides).validate()


def test_unknown_v1_key_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'lambda_gp'"):
        Config.from_dict({"v1": {"lambda_pg": 1}})
