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
