"""A CelebA-HQ-shaped model (w_hpf 1 at 64 px, random weights in the authors' layout, plus a FAN of random
weights) converted and exported once per session: the face serving, TFLite and ONNX tests read it (and copy what
they change)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest

from tests.harness.artifacts import built_once
from tests.harness.components import require
from tests.harness.v2 import make_tiny_config

IMG = 64  # G adds the skips at 64 px (mask 2) and 32 px (mask 1)
MEAN_STYLE_SAMPLES = 16
MODEL_NAME = "stargan"


class FaceModel(NamedTuple):
    config: object  # the model's Config, without a --fan-checkpoint
    ema_checkpoint: Path  # the authors' 100000_nets_ema.ckpt layout
    wing: Path  # the FAN's wing.ckpt
    model: Path  # the converted model directory (with its FAN)
    export: Path  # its SavedModel export, models/stargan/1


def face_config():
    return make_tiny_config(img_size=IMG, num_domains=2, domain_names=["female", "male"], w_hpf=1.0, base_dim=8,
                            max_conv_dim=32, mapping_hidden_dim=32)


def _paths(root: Path) -> FaceModel:
    return FaceModel(face_config(), root / "upstream" / "100000_nets_ema.ckpt", root / "wing.ckpt", root / "model",
                     root / "models" / MODEL_NAME / "1")


def _build(root: Path) -> None:
    from stargan_keras.families import load
    from stargan_keras.serving.export import export_saved_model
    from stargan_keras.v2.convert import convert_checkpoint
    from tests.references import torch_fan
    from tests.references.torch_stargan_v2 import build_networks_like, save_upstream_checkpoints

    paths = _paths(root)
    save_upstream_checkpoints(build_networks_like(paths.config.model, seed=4), root / "upstream")
    torch_fan.save_wing_checkpoint(torch_fan.randomize(torch_fan.TorchFAN(), seed=2), paths.wing)
    convert_checkpoint(paths.ema_checkpoint, paths.config.replace(fan_checkpoint=str(paths.wing)), paths.model,
                       log=lambda _: None)
    export = export_saved_model(load(paths.model, mean_style_samples=MEAN_STYLE_SAMPLES), paths.export.parent,
                                mean_style_samples=MEAN_STYLE_SAMPLES)
    assert export == paths.export, export


@pytest.fixture(scope="session")
def face_model_files(tmp_path_factory) -> FaceModel:
    """The shared face model's files (read only)."""
    require("torch")
    return _paths(built_once(tmp_path_factory, "face_model", _build))
