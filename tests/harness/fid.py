"""Random-weight FID networks written to files, so tests can pass `--inception-weights PATH` (nothing is
downloaded): the hand-written torch Inception3 as a torchvision-style state dict, or the Keras port's weights."""

from pathlib import Path

import pytest

needs_torch = pytest.mark.needs("torch")


def save_random_torch_inception(path: Path):
    """A randomly initialised torch Inception3 (tests/references), with BatchNorm statistics that are not
    identities, saved as a torchvision-style state dict at `path`; returns the torch model."""
    import torch
    from torch import nn

    from tests.references.torch_metrics import TorchInception3

    torch.manual_seed(0)
    model = TorchInception3().eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0, (2 / fan_in) ** 0.5)
            elif isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.2)
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    torch.save(model.state_dict(), path)
    return model


def save_random_keras_inception(path: Path) -> Path:
    """The Keras port of torchvision's InceptionV3 with random weights, as a `.weights.h5` file (no torch)."""
    from stargan_keras.metrics import inception

    inception.build_torchvision_inception_v3().save_weights(path)
    return path


def small_inception(weights=None):
    """A stand-in for `fid._keras_inception` or `fid._torchvision_inception` (monkeypatch it): two random strided
    convolutions and a 64-d average pool on the same 299 px input, so the extractor's pipeline runs at a fraction
    of InceptionV3's cost, for tests about what reaches the FID network or what is reported, not the network."""
    import keras

    from stargan_keras.metrics.fid import INCEPTION_SIZE

    assert weights is None, "the stand-in has random weights only"
    seeded = [keras.initializers.GlorotUniform(seed=seed) for seed in (0, 1)]
    return keras.Sequential([keras.Input((INCEPTION_SIZE, INCEPTION_SIZE, 3)),
                             keras.layers.Conv2D(16, 7, strides=4, activation="relu", kernel_initializer=seeded[0]),
                             keras.layers.Conv2D(64, 3, strides=4, activation="relu", kernel_initializer=seeded[1]),
                             keras.layers.GlobalAveragePooling2D()])


def build_fid_extractors_once(monkeypatch):
    """While patched, `FidFeatureExtractor` (for `evaluate` and `fid` alike) builds one extractor per set of
    arguments and hands it out again: the commands a test runs in turn on one weights file share its network
    instead of each loading and tracing InceptionV3 anew."""
    import inspect

    from stargan_keras import fid as fid_command
    from stargan_keras.metrics import fid

    build, built = fid.FidFeatureExtractor, {}

    def once(*args, **kwargs):
        bound = inspect.signature(build).bind(*args, **kwargs)
        bound.apply_defaults()
        key = repr(sorted((name, str(value)) for name, value in bound.arguments.items()))
        if key not in built:
            built[key] = build(*args, **kwargs)
        return built[key]

    for module in (fid, fid_command):
        monkeypatch.setattr(module, "FidFeatureExtractor", once)
    return built
