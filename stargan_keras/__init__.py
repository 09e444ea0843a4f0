"""StarGAN v2 (Choi et al., CVPR 2020) in TensorFlow 2 / Keras 3."""

from stargan_keras.core import quiet

# TensorFlow's C++ log lines (CUDA probes, CPU feature notes) are noise for users of these
# commands; --debug or a TF_CPP_MIN_LOG_LEVEL of the user's shows them.
quiet.install()

__version__ = "0.1.0"

__all__ = ["__version__", "load"]


def _load(path, **kwargs):
    """A run or model directory, or a preset name (`python -m stargan_keras presets`), as its family's
    translation object."""
    from stargan_keras import families
    from stargan_keras.presets import resolve_model

    return families.load(resolve_model(path), **kwargs)


def __getattr__(name):
    """`stargan_keras.load` (a `v2.inference.Translator`, or a `v1.inference.Translator` for a StarGAN v1 model) imports
    TensorFlow only when first used, keeping `import stargan_keras` light."""
    if name == "load":
        return _load
    raise AttributeError(f"module 'stargan_keras' has no attribute {name!r}")
