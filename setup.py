"""stargan_keras: StarGAN v2 in TensorFlow 2 / Keras 3, from training to serving."""

import importlib.util
import os
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
REQUIRE_LITERT = "STARGAN_KERAS_REQUIRE_LITERT"  # 1: a built package without LiteRT.js is an error (releases)


class BuildWithLiteRT(build_py):
    """A built package (wheel, `pip install .`) carries the LiteRT.js files the demo page loads, taken from the
    tarballs package-lock.json pins, their integrity checked (stargan_keras/browser/litert_files.py). An editable
    install serves node_modules/@litertjs of the checkout instead (`npm ci`)."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        spec = importlib.util.spec_from_file_location("litert_files",
                                                      HERE / "stargan_keras" / "browser" / "litert_files.py")
        litert_files = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(litert_files)
        dest = Path(self.build_lib) / "stargan_keras" / "browser" / "page" / "litert"
        try:
            manifest = litert_files.vendor(HERE / "package-lock.json", dest)
        except litert_files.LiteRTMissing as err:
            if os.environ.get(REQUIRE_LITERT, "") not in ("", "0"):
                raise
            print(f"warning: the demo page's LiteRT.js is not in this build ({err}); "
                  "`python -m stargan_keras.demo` will need `npm ci` in a checkout.")
            return
        versions = ", ".join(f"{name}@{package['version']}" for name, package in manifest["packages"].items())
        print(f"LiteRT.js for the demo page: {len(manifest['files'])} files of {versions}")


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
    cmdclass={"build_py": BuildWithLiteRT},
    entry_points={"console_scripts": ["stargan-keras=stargan_keras.__main__:main"]},
)
