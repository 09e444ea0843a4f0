"""StarGAN v2 (Choi et al., CVPR 2020) in TensorFlow 2 / Keras 3."""

from . import quiet

# TensorFlow's C++ log lines (CUDA probes, CPU feature notes) are noise for users of these
# commands; --debug or a TF_CPP_MIN_LOG_LEVEL of the user's shows them.
quiet.install()

__version__ = "0.1.0"

__all__ = ["__version__", "load"]


def __getattr__(name):
    """`stargan_keras.load` (a `Translator`, or a `v1.inference.V1Translator` for a StarGAN v1 model) imports
    TensorFlow only when first used, keeping `import stargan_keras` light."""
    if name == "load":
        from .inference import load

        return load
    raise AttributeError(f"module 'stargan_keras' has no attribute {name!r}")
