"""TFLite files converted from the export match the SavedModel (and the Keras networks) at the promised PSNR,
with builtin ops only, at about 1x, 0.5x and 0.25x the float32 size."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import re

import keras
import numpy as np
import pytest

from stargan_keras import tflite as tflite_cli
from stargan_keras.core.model_dir import save_networks
from stargan_keras.core.imaging import from_uint8, to_uint8
from stargan_keras.families import load
from stargan_keras.v2.networks import build_networks
from stargan_keras.serving import tflite
from stargan_keras.serving.export import export_saved_model
from stargan_keras.serving.signatures import TFLITE_NAMES
from tests.harness.serving import LoadedOnce

pytestmark = pytest.mark.slow  # three conversions; test_serving_contract checks the functions they convert, fast

# PSNR floors by file kind, each within 20 dB (10x the error) of the lowest measured signature: float32 images
# measured identical here (inf; 82 dB in face/test_serving.py), styles 131.8 dB; float16 59.1 dB; dynamic-range
# int8 31.9 dB.
MIN_PSNR = {"none": 62.0, "float16": 50.0, "dynamic": 28.0}
IMG_SIZE = 32


@pytest.fixture(scope="module")
def loaded_once():
    return LoadedOnce()


@pytest.fixture(scope="module")
def converted(tmp_path_factory, tiny_config, loaded_once):
    """A tiny model wide enough that weights dominate the files (so size ratios mean something), exported and
    converted three ways: (Keras model, export path, {quantize: tflite path})."""
    keras.utils.set_random_seed(7)
    cfg = tiny_config(img_size=IMG_SIZE, base_dim=32, max_conv_dim=128, mapping_hidden_dim=128)
    root = tmp_path_factory.mktemp("tflite")
    model = load(save_networks(root / "model", cfg, build_networks(cfg.model, with_discriminator=False)))
    export = export_saved_model(model, root / "models" / "stargan", mean_style_samples=64)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tflite, "_load_export", loaded_once)
        files = tflite.convert_many(export, {q: root / f"stargan_{q}.tflite" for q in tflite.QUANTIZATIONS})
    return model, export, files


@pytest.fixture
def export_loaded_once(monkeypatch, loaded_once):
    monkeypatch.setattr(tflite, "_load_export", loaded_once)


@pytest.fixture
def test_images(request):
    """A real AFHQ cat and wild animal from ../shared when present, else smooth synthetic images."""
    try:
        shared = request.getfixturevalue("shared_dir")
    except pytest.skip.Exception:
        return None, None
    root = shared / "data" / "stargan_v2_representative" / "afhq"
    sources, references = sorted((root / "src" / "cat").glob("*.jpg")), sorted((root / "ref" / "wild").glob("*.jpg"))
    if not sources or not references:
        return None, None
    return sources[0], references[0]


def test_only_builtin_ops_and_the_five_tensor_signatures(converted):
    _, _, files = converted
    for path in files.values():
        interpreter = tflite.make_interpreter(path, threads=1)  # fails on custom or Flex (select TF) ops
        signatures = interpreter.get_signature_list()
        assert sorted(signatures) == sorted(TFLITE_NAMES)
        assert sorted(signatures["latent_guided"]["inputs"]) == ["image", "psi", "target_domain", "z"]
        assert signatures["reference_guided"]["outputs"] == ["image"]


@pytest.mark.parametrize("quantize", tflite.QUANTIZATIONS)
def test_matches_the_saved_model(converted, test_images, export_loaded_once, quantize):
    _, export, files = converted
    results = tflite.verify(files[quantize], export, *test_images, runs=1, threads=1)
    assert [r["signature"] for r in results] == list(TFLITE_NAMES)
    print(f"{quantize}: " + ", ".join(f"{r['signature']} {r['psnr_db']:.1f} dB" for r in results))
    for result in results:
        assert result["psnr_db"] >= MIN_PSNR[quantize], result
    if quantize == "none":
        image_results = [r for r in results if r["output"] == "image"]
        assert all(r["max_abs_error"] <= 2 for r in image_results), image_results


def test_float32_file_computes_what_the_keras_networks_compute(converted, test_images):
    model, _, files = converted
    inputs = tflite.sample_inputs(IMG_SIZE, 16, 64, 3, *test_images)["reference_guided"]
    expected = to_uint8(model.generator(from_uint8(inputs["image"]),
                                        model.style_encoder(from_uint8(inputs["reference"]),
                                                            inputs["reference_domain"])).numpy())
    assert expected.std() > 10, "near-constant output: PSNR would prove little"
    runner = tflite.make_interpreter(files["none"], threads=1).get_signature_runner("reference_guided")
    actual = runner(**inputs)["image"]
    assert actual.shape == (1, IMG_SIZE, IMG_SIZE, 3) and actual.dtype == np.uint8
    assert tflite.psnr(actual, expected, 255.0) >= MIN_PSNR["none"]


def test_sizes_are_about_one_half_and_one_quarter(converted):
    model, _, files = converted
    size = {q: path.stat().st_size for q, path in files.items()}
    assert 0.45 <= size["float16"] / size["none"] <= 0.6, size
    assert 0.2 <= size["dynamic"] / size["none"] <= 0.35, size
    # The float32 file stores the networks' own weights once: 3x3 kernels, not the folded 4x4 ones.
    weight_bytes = 4 * sum(net.count_params() for net in (model.generator, model.mapping_network, model.style_encoder))
    assert 1.0 <= size["none"] / weight_bytes <= 1.05, (size["none"], weight_bytes)


def test_check_reverifies_an_existing_file_and_errors_name_the_input(converted, export_loaded_once, capsys, tmp_path):
    _, export, files = converted
    assert tflite_cli.main(["--saved-model", str(export), "--output", str(files["dynamic"]), "--check",
                            "--runs", "1"]) == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in TFLITE_NAMES) and "PSNR" in printed
    assert tflite_cli.main(["--saved-model", str(tmp_path), "--output", str(tmp_path / "x.tflite")]) == 2
    assert f"--saved-model {tmp_path}: no saved_model.pb" in capsys.readouterr().err
    assert tflite_cli.main(["--saved-model", str(export), "--output", str(tmp_path / "x.tflite"), "--check"]) == 2
    assert "does not exist" in capsys.readouterr().err
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"not a flatbuffer at all")
    assert tflite_cli.main(["--saved-model", str(export), "--output", str(garbage), "--check"]) == 2
    assert f"{garbage} is not a TFLite file" in capsys.readouterr().err


def test_signature_runner_checks_inputs_against_the_model_and_names_them(converted):
    """The runtime itself resizes a signature's inputs to what it is given: a 20 x 20 image would come back
    20 x 20, and a z of the wrong length fail inside XNNPack naming a node number, not the input."""
    _, _, files = converted
    run = tflite.signature_runner(tflite.make_interpreter(files["none"], threads=1), "latent_guided")
    good = tflite.sample_inputs(IMG_SIZE, 16, 64, 3)["latent_guided"]
    assert run(**good)["image"].shape == (1, IMG_SIZE, IMG_SIZE, 3)
    cases = [({"image": np.zeros((1, 20, 20, 3), np.uint8)}, "input 'image' must be uint8 [1, 32, 32, 3], got uint8 "
                                                             "[1, 20, 20, 3] (TFLite signatures take one image at "
                                                             "the model's size: resize it first)"),
             ({"z": np.zeros((1, 15), np.float32)}, "input 'z' must be float32 [1, 16], got float32 [1, 15]"),
             ({"psi": 0.7}, "input 'psi' must be float32 [], got float64 []"),
             ({"target_domain": np.array([1], np.int64)}, "input 'target_domain' must be int32 [1], got int64")]
    for change, expected in cases:
        with pytest.raises(tflite.TFLiteError, match=re.escape(expected)):
            run(**{**good, **change})
    with pytest.raises(tflite.TFLiteError, match=re.escape("'latent_guided' takes inputs image, psi, target_domain, "
                                                           "z; missing: z")):
        run(**{k: v for k, v in good.items() if k != "z"})

