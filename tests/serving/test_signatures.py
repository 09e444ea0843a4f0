"""The serving contract, pinned: every signature of an export, run the way TF Serving runs it, computes what
the `Translator` computes, and the SavedModel, its warmup file, the serving docs and the client all follow the
one signature table."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from stargan_keras.core.imaging import from_uint8
from stargan_keras.serving import signatures as table
from stargan_keras.serving.client import StarGANClient
from stargan_keras.serving.warmup import WARMUP_FILE
from tests.harness.checks import assert_quantized, assert_style_codes

SERVED = table.NAMES + (table.SERVING_DEFAULT,)
SERVING_README = Path(__file__).resolve().parents[2] / "serving" / "README.md"


@pytest.fixture(scope="module")
def requests():
    """Inputs at the model's size (no resize), three per batch, varied domains."""
    rng = np.random.default_rng(0)
    return {"image": rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8),
            "reference": rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8),
            "target_domain": np.array([0, 2, 1], np.int32), "reference_domain": np.array([1, 1, 2], np.int32),
            "z": rng.standard_normal((3, 16)).astype(np.float32),
            "style": rng.standard_normal((3, 64)).astype(np.float32)}


def png(image):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def encoded(images):
    return np.array([png(image) for image in images], dtype=object)


def decoded(data):
    return np.stack([np.asarray(Image.open(io.BytesIO(b))) for b in data])


@pytest.mark.parametrize("psi", [1.0, 0.5])
def test_latent_signatures_compute_what_the_translator_computes(v2_served, requests, psi):
    translator, _, session = v2_served
    x, y, z = requests["image"], requests["target_domain"], requests["z"]
    floats = translator.latent_guided(from_uint8(x), y, z, psi)
    inputs = {"image": x, "target_domain": y, "z": z, "psi": np.float32(psi)}
    image = session.run("latent_guided", inputs)["image"]
    assert_quantized(image, floats)
    np.testing.assert_array_equal(session.run(table.SERVING_DEFAULT, inputs)["image"], image)  # the same function
    out = session.run("latent_guided_bytes", {"image_bytes": encoded(x), "target_domain": y, "z": z,
                                              "psi": np.full((3,), psi, np.float32)})
    assert_quantized(decoded(out["image_bytes"]), floats)
    style = session.run("style_from_latent", {"target_domain": y, "z": z, "psi": np.float32(psi)})["style"]
    assert_style_codes(style, translator.style_from_latent(z, y, psi))
    per_code = np.array([psi, 1.0, 0.25], np.float32)
    style = session.run("style_from_latent", {"target_domain": y, "z": z, "psi": per_code})["style"]
    assert_style_codes(style, translator.style_from_latent(z, y, per_code))


def test_reference_signatures_compute_what_the_translator_computes(v2_served, requests):
    translator, _, session = v2_served
    x, ref, y = requests["image"], requests["reference"], requests["reference_domain"]
    floats = translator.reference_guided(from_uint8(x), from_uint8(ref), y)
    out = session.run("reference_guided", {"image": x, "reference": ref, "reference_domain": y})
    assert_quantized(out["image"], floats)
    out = session.run("reference_guided_bytes", {"image_bytes": encoded(x), "reference_bytes": encoded(ref),
                                                 "reference_domain": y})
    assert_quantized(decoded(out["image_bytes"]), floats)
    style = session.run("style_from_reference", {"reference": ref, "reference_domain": y})["style"]
    assert_style_codes(style, translator.style_from_reference(from_uint8(ref), y))
    out = session.run("synthesize", {"image": x, "style": requests["style"]})
    assert_quantized(out["image"], translator.synthesize(from_uint8(x), requests["style"]))


def test_other_sizes_are_resized_before_the_translator(v2_served, requests):
    translator, _, session = v2_served
    x = np.random.default_rng(1).integers(0, 256, (2, 48, 40, 3), dtype=np.uint8)
    y, z = requests["target_domain"][:2], requests["z"][:2]
    resized = tf.image.resize(tf.cast(x, tf.float32), [32, 32], method="bilinear", antialias=True)
    out = session.run("latent_guided", {"image": x, "target_domain": y, "z": z, "psi": np.float32(0.5)})
    assert_quantized(out["image"], translator.latent_guided(from_uint8(resized.numpy()), y, z, 0.5))


@pytest.mark.slow
def test_tflite_twins_are_the_tables_tflite_signatures_on_one_image(v2_served, requests):
    """The functions `stargan_keras.tflite` converts: static inputs from the table (N = 1, S x S, psi a scalar),
    computed by the Translator with the authors' resampling ops."""
    translator, path, _ = v2_served
    loaded = tf.saved_model.load(str(path))
    twins = sorted(n for n in dir(loaded) if n.startswith("tflite_"))
    assert twins == sorted(f"tflite_{n}" for n in table.TFLITE_NAMES)
    dims = table.dimensions(translator.config.model)
    for name in table.TFLITE_NAMES:
        (specs, _) = getattr(loaded, f"tflite_{name}").get_concrete_function().structured_input_signature
        assert [(spec.name, spec.dtype.name, spec.shape.as_list()) for spec in specs] == [
            (t.name, t.dtype, [] if t.scalar_ok else list(t.resolve(**dims))) for t in table.signature(name).inputs]
    authors = translator.with_authors_ops()
    x, ref, style = requests["image"][:1], requests["reference"][:1], requests["style"][:1]
    y, z = requests["target_domain"][2:], requests["z"][2:]
    out = loaded.tflite_latent_guided(x, y, z, np.float32(0.5))["image"].numpy()
    assert_quantized(out, authors.latent_guided(from_uint8(x), y, z, 0.5))
    out = loaded.tflite_reference_guided(x, ref, y)["image"].numpy()
    assert_quantized(out, authors.reference_guided(from_uint8(x), from_uint8(ref), y))
    out = loaded.tflite_synthesize(x, style)["image"].numpy()
    assert_quantized(out, authors.synthesize(from_uint8(x), style))
    assert_style_codes(loaded.tflite_style_from_latent(y, z, np.float32(0.5))["style"],
                       authors.style_from_latent(z, y, 0.5))
    assert_style_codes(loaded.tflite_style_from_reference(ref, y)["style"],
                       authors.style_from_reference(from_uint8(ref), y))


def test_metadata_reports_the_config(v2_served):
    translator, _, session = v2_served
    cfg = translator.config.model
    out = session.run("metadata", {"domain": np.array([b"wild", b"", b"cat"], dtype=object)})
    assert set(out) == {t.name for t in table.METADATA_OUT}
    assert out["domain_index"].tolist() == [2, -1, 0]
    assert out["domain_names"].tolist() == [[n.encode() for n in cfg.resolved_domain_names]] * 3
    for tensor in table.SIZE_OUTS:
        assert out[tensor.name].tolist() == [getattr(cfg, tensor.name)] * 3


def test_the_export_saves_the_translators_mean_styles(v2_served):
    translator, path, _ = v2_served
    saved = tf.train.load_checkpoint(str(path / "variables" / "variables"))
    np.testing.assert_array_equal(saved.get_tensor("mean_styles/.ATTRIBUTES/VARIABLE_VALUE"),
                                  translator.mean_styles().numpy())


def test_signature_defs_are_the_table(v2_served):
    translator, _, session = v2_served
    dims = table.dimensions(translator.config.model, batch=-1, count=-1)  # batch dimensions are unknown: -1
    defs = {name: d for name, d in session.signatures.items() if not name.startswith("__")}
    assert sorted(defs) == sorted(SERVED)
    for name, signature_def in defs.items():
        entry = table.signature(name)
        assert signature_def.method_name == "tensorflow/serving/predict"
        assert sorted(signature_def.inputs) == sorted(t.name for t in entry.inputs), name
        for tensor in entry.inputs:  # declared with unknown shapes: the graph checks them
            info = signature_def.inputs[tensor.name]
            assert tf.as_dtype(info.dtype).name == tensor.dtype and info.tensor_shape.unknown_rank, (name, tensor)
        assert sorted(signature_def.outputs) == sorted(t.name for t in entry.outputs), name
        for tensor in entry.outputs:
            info = signature_def.outputs[tensor.name]
            assert tf.as_dtype(info.dtype).name == tensor.dtype, (name, tensor)
            assert [d.size for d in info.tensor_shape.dim] == list(tensor.resolve(**dims)), (name, tensor)


def test_warmup_holds_one_request_per_signature_as_the_table_says(v2_served):
    from tensorflow_serving.apis import prediction_log_pb2

    translator, path, session = v2_served
    dims = table.dimensions(translator.config.model)
    requests = []
    for record in tf.data.TFRecordDataset(str(path / WARMUP_FILE)):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        requests.append(log.predict_log.request)
    assert sorted(r.model_spec.signature_name for r in requests) == sorted(SERVED)
    for request in requests:
        entry = table.signature(request.model_spec.signature_name)
        assert request.model_spec.name == "stargan"
        inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
        assert sorted(inputs) == sorted(t.name for t in entry.inputs)
        for tensor in entry.inputs:  # psi too is [N]: TF Serving's batching cannot merge scalars
            assert tf.as_dtype(request.inputs[tensor.name].dtype).name == tensor.dtype
            assert inputs[tensor.name].shape == tensor.resolve(**dims), (entry.name, tensor)
        outputs = session.run(request.model_spec.signature_name, inputs)
        assert sorted(outputs) == sorted(t.name for t in entry.outputs)


def test_serving_docs_show_the_table():
    assert table.markdown_table() in SERVING_README.read_text()


class _Recorder:
    """`StarGANClient.predict` answered by the session-loaded export, recording each request."""

    def __init__(self, session):
        self.session, self.requests = session, []

    def __call__(self, name, inputs):
        self.requests.append((name, inputs))
        return self.session.run(name, inputs)


@pytest.mark.parametrize("rest", [False, True])
def test_client_requests_follow_the_table_and_get_the_translators_images(v2_served, requests, monkeypatch, rest):
    translator, _, session = v2_served
    client = StarGANClient(rest=rest)
    recorder = _Recorder(session)
    monkeypatch.setattr(client, "predict", recorder)
    cfg = translator.config.model
    assert client.metadata() == {"domain_names": cfg.resolved_domain_names,
                                 **{t.name: getattr(cfg, t.name) for t in table.SIZE_OUTS}}
    x, ref = list(requests["image"][:2]), list(requests["reference"][:2])
    latent = np.stack(client.latent(x, "wild", seed=3, psi=0.5))
    z = np.tile(client.latent_code(3), (2, 1))
    assert_quantized(latent, translator.latent_guided(from_uint8(np.stack(x)), [2, 2], z, 0.5))
    styled = np.stack(client.reference(x, ref, "dog"))
    assert_quantized(styled, translator.reference_guided(from_uint8(np.stack(x)), from_uint8(np.stack(ref)), [1, 1]))
    for name, inputs in recorder.requests:
        entry = table.signature(name)
        assert sorted(inputs) == sorted(t.name for t in entry.inputs), name
        for tensor in entry.inputs:
            value = np.asarray(inputs[tensor.name])
            assert (value.dtype == object) if tensor.dtype == "string" else value.dtype.name == tensor.dtype
    assert [name for name, _ in recorder.requests] == (
        ["metadata", "latent_guided_bytes", "reference_guided_bytes"] if rest else
        ["metadata", "latent_guided", "reference_guided"])


class _Answer(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_rest_answers_of_one_output_are_keyed_by_the_table(monkeypatch):
    """TF Serving's REST API drops the key of a signature's only output; the client puts the table's back."""
    answer = {"image": [[[[0, 0, 0]]]], "style": [[0.5, -0.5]], "image_bytes": [{"b64": "AAEC"}]}
    expected_key = {"latent_guided": "image", "reference_guided": "image", "synthesize": "image",
                    "serving_default": "image", "style_from_latent": "style", "style_from_reference": "style",
                    "latent_guided_bytes": "image_bytes", "reference_guided_bytes": "image_bytes"}
    client = StarGANClient("127.0.0.1:1", rest=True, retries=0)
    for name, key in expected_key.items():
        monkeypatch.setattr("urllib.request.urlopen",
                            lambda *args, key=key, **kwargs: _Answer(json.dumps({"outputs": answer[key]}).encode()))
        assert list(client.predict(name, {})) == [key], name
    single = [s.name for s in table.SIGNATURES if len(s.outputs) == 1] + [table.SERVING_DEFAULT]
    assert sorted(expected_key) == sorted(single)
