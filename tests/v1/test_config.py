"""StarGAN v1's config class: the paper's defaults, YAML (today's layout and the earlier `v1:` section), flags
and checks."""

from __future__ import annotations

import argparse

import pytest
import yaml

from stargan_keras.core.config import ConfigError, add_config_flags, overrides_from_args
from stargan_keras.families import config_from_dict
from stargan_keras.v1.config import Config
from stargan_keras.v2.config import Config as V2Config


def test_defaults_are_the_papers():
    config = Config()
    model, train = config.model, config.train
    assert (model.image_size, model.c_dim, model.g_conv_dim, model.d_conv_dim, model.g_repeat_num,
            model.d_repeat_num) == (128, 5, 64, 64, 6, 6)
    assert (train.lambda_cls, train.lambda_rec, train.lambda_gp, train.n_critic) == (1.0, 10.0, 10.0, 5)
    assert (train.g_lr, train.d_lr, train.beta1, train.beta2, train.epsilon) == (1e-4, 1e-4, 0.5, 0.999, 1e-8)
    assert model.selected_attrs == ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
    assert (train.lr_decay, train.num_iters_decay) == ("linear", 100_000)
    assert (config.model_family, V2Config().model_family) == ("v1", "v2")


def test_a_v1_config_round_trips_and_has_no_v2_field():
    config = config_from_dict({"model_family": "v1", "model": {"c_dim": 8, "selected_attrs": [],
                                                               "label_type": "categorical"},
                               "train": {"batch_size": 16}})
    assert isinstance(config, Config)
    assert config.validate().model.c_dim == 8 and config.train.batch_size == 16
    saved = yaml.safe_load(config.to_yaml())
    assert saved["model_family"] == "v1" and "img_size" not in saved["model"] and "lr" not in saved["train"]
    assert config_from_dict(saved) == config
    assert "c_dim" not in yaml.safe_load(V2Config().to_yaml())["model"]


def test_a_config_of_the_earlier_layout_still_opens():
    """Run and model directories written before the families had their own config classes keep a `v1` section
    and StarGAN v2's optimisation fields in `train`."""
    legacy = {"model_family": "v1", "v1": {"image_size": 64, "c_dim": 3, "selected_attrs": ["a", "b", "c"],
                                           "lambda_gp": 5.0, "rafd_crop_size": 100, "d_repeat_num": 4},
              "data": {"dataset": "rafd", "rrc_prob": 0.5}, "train": {"batch_size": 4, "lr": 1e-4, "epsilon": 1e-6,
                                                                       "ema_beta": 0.999},
              "run_dir": "runs/old"}
    config = config_from_dict(legacy).validate()
    assert (config.model.image_size, config.model.c_dim, config.train.lambda_gp, config.data.rafd_crop_size) == (
        64, 3, 5.0, 100)
    assert (config.train.batch_size, config.train.epsilon, config.run_dir) == (4, 1e-6, "runs/old")


def test_flags_reach_the_v1_sections():
    parser = argparse.ArgumentParser()
    add_config_flags(parser, Config)
    args = parser.parse_args(["--c-dim", "3", "--selected-attrs", "a,b,c", "--lambda-gp", "5", "--rafd-crop-size",
                              "10"])
    config = Config().replace(**overrides_from_args(args, Config)).validate()
    assert (config.model.c_dim, config.model.selected_attrs, config.train.lambda_gp, config.data.rafd_crop_size) == (
        3, ["a", "b", "c"], 5.0, 10)


def test_each_family_has_only_its_own_flags():
    v1_fields, v2_fields = set(Config.flat_fields()), set(V2Config.flat_fields())
    assert {"image_size", "c_dim", "lambda_gp", "beta1", "g_lr"} <= v1_fields - v2_fields
    assert {"img_size", "num_domains", "lambda_ds", "beta_1", "f_lr", "rrc_prob"} <= v2_fields - v1_fields
    assert {"batch_size", "total_iters", "seed", "dataset", "run_dir"} <= v1_fields & v2_fields


@pytest.mark.parametrize("overrides, message", [
    (dict(c_dim=8), "--selected-attrs has 5 names"),
    (dict(image_size=96), "--image-size 96: must be divisible by 2\\*\\*d_repeat_num = 64"),
    (dict(label_type="binary"), "--label-type 'binary'"),
    (dict(lr_decay="cosine"), "--lr-decay 'cosine'"),
    (dict(c2_dim=8), "--selected-attrs has 5 names .* but --c-dim \\+ --c2-dim is 5 \\+ 8"),
    (dict(rafd_crop_size=-1), "--rafd-crop-size -1: must be at least 0"),
    (dict(img_size=64), "unknown option --img-size for v1"),
])
def test_bad_values_name_the_flag(overrides, message):
    with pytest.raises(ConfigError, match=message):
        Config().replace(**overrides).validate()


def test_unknown_family_and_key_suggest_the_closest():
    with pytest.raises(ConfigError, match="model_family 'v3'"):
        config_from_dict({"model_family": "v3"})
    with pytest.raises(ConfigError, match="did you mean 'lambda_gp'"):
        config_from_dict({"model_family": "v1", "train": {"lambda_pg": 1}})
