"""A CelebA-HQ-shaped model (w_hpf = 1, random weights in the authors' layout, plus a FAN) converted, exported,
served over gRPC and converted to TFLite: every path translates with the face masks computed in the graph."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from tests.harness.components import require

torch = require("torch")

from benchmarks.saved_model_session import SavedModelSession  # noqa: E402
from stargan_keras.v2.convert import convert_checkpoint  # noqa: E402
from stargan_keras.face.model_files import FAN_FILE  # noqa: E402
from stargan_keras.core.config import ConfigError  # noqa: E402
from stargan_keras.core.imaging import from_uint8, to_uint8  # noqa: E402
from stargan_keras.families import load  # noqa: E402
from stargan_keras.serving import tflite  # noqa: E402
from stargan_keras.serving.client import StarGANClient  # noqa: E402
from tests.harness.face import IMG, MEAN_STYLE_SAMPLES  # noqa: E402
from tests.harness.serving import LoadedOnce, start_grpc_server  # noqa: E402
from tests.harness.checks import assert_quantized, smooth_images  # noqa: E402

pytestmark = pytest.mark.slow  # a conversion, an export, a gRPC server and a TFLite conversion


@pytest.fixture(scope="module")
def face_model(face_model_files, tmp_path_factory):
    """(Translator, export) of the shared face model (tests/harness/face.py)."""
    files = face_model_files
    refused = tmp_path_factory.mktemp("face") / "refused"
    with pytest.raises(ConfigError, match="--fan-checkpoint"):  # no FAN, no conversion: never a silent fallback
        convert_checkpoint(files.ema_checkpoint, files.config, refused, log=lambda _: None)
    assert not refused.exists()
    assert (files.model / FAN_FILE).is_file()
    translator = load(files.model, mean_style_samples=MEAN_STYLE_SAMPLES)
    translator.mean_styles()
    return translator, files.export


def test_served_translations_are_the_masked_translations(face_model):
    translator, export = face_model
    session = SavedModelSession(export)
    server, address = start_grpc_server(session, int(export.name))
    try:
        client = StarGANClient(address, timeout=60, retries=0)
        images, references = smooth_images(2, IMG, seed=0), smooth_images(2, IMG, seed=1)
        z = np.random.default_rng(3).standard_normal((1, 16)).astype(np.float32).repeat(2, 0)
        x = from_uint8(images)
        expected = translator.latent_guided(x, [1, 1], z).numpy()
        assert_quantized(np.stack(client.latent(list(images), "male", seed=3)), expected)
        styles = translator.style_from_reference(from_uint8(references), [0, 0])
        expected_ref = translator.synthesize(x, styles).numpy()
        assert_quantized(np.stack(client.reference(list(images), list(references), "female")), expected_ref)
        unmasked = to_uint8(translator.generator(x, styles).numpy())  # G without its skips: not what is served
        assert np.mean(np.abs(unmasked.astype(int) - to_uint8(expected_ref).astype(int)) > 1) > 0.05
    finally:
        server.stop(grace=None)
        session.close()


def test_tflite_file_carries_the_fan_and_matches_the_saved_model(face_model, tmp_path, monkeypatch):
    _, export = face_model
    monkeypatch.setattr(tflite, "_load_export", LoadedOnce())  # the conversion and the check share one load
    path = tflite.convert_many(export, {"none": tmp_path / "face.tflite"})["none"]
    results = tflite.verify(path, export, None, None, runs=1, threads=1)
    image_results = [r for r in results if r["output"] == "image"]
    assert {r["signature"] for r in image_results} >= {"latent_guided", "reference_guided"}
    print("face TFLite: " + ", ".join(f"{r['signature']} {r['output']} {r['psnr_db']:.1f} dB" for r in results))
    for result in results:
        assert result["psnr_db"] >= 62.0, result  # measured 82.0 dB (images), 138.9 dB (styles)
