"""stargan_keras: StarGAN v2 in TensorFlow 2 / Keras 3, from training to serving."""

from pathlib import Path

from setuptools import find_packages, setup

# `python -m stargan_keras.export --format onnx` and `client --onnx`: the versions verified with TensorFlow 2.21 and
# NumPy 2.4.
ONNX = ["tf2onnx==1.17.0", "onnx==1.23.2", "onnxruntime==1.32.0"]

setup(
    name="stargan-keras",
    version="0.1.0",
    description="StarGAN v2 (Choi et al., CVPR 2020) in TensorFlow 2 / Keras 3: training, evaluation, "
                "TF Serving and TFLite export",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="CC BY-NC 4.0 (the paper's model and data); see README",
    python_requires=">=3.11",
    packages=find_packages(include=["stargan_keras", "stargan_keras.*"]) + ["stargan_keras.configs"],
    # The YAML presets live in the top-level configs/ folder and install as stargan_keras/configs.
    package_dir={"stargan_keras.configs": "configs"},
    # The in-browser demo's page (HTML, CSS, an ES module) is served by `python -m stargan_keras.demo`.
    package_data={"stargan_keras.configs": ["*.yaml"], "stargan_keras.browser": ["page/*"]},
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.15,<4",
        "tensorflow-datasets>=4.9",
        "tensorflow-serving-api>=2.21,<2.22",
        "tensorboard>=2.21",
        "numpy",
        "pillow",
        "pyyaml",
        "scipy",
        "ai-edge-litert",
        "grpcio",
    ],
    extras_require={
        # Only to read the authors' PyTorch checkpoints and weights. Any CPU build from 2.1 reads them; install it
        # first (`pip install torch==2.13.0`): an unpinned torch pulls a multi-GB CUDA build, whose Triton does
        # not load beside TensorFlow in one process.
        "torch": ["torch>=2.1"],
        "onnx": ONNX,
        # The tests' PyTorch references run beside TensorFlow: the CPU 2.13 build the README installs first.
        "test": ["pytest>=8", "pytest-xdist>=3", "torch==2.13.0", "dill", "importlib_resources",  # these two for tfds.testing
                 *ONNX],
    },
    entry_points={"console_scripts": ["stargan-keras=stargan_keras.__main__:main"]},
)
