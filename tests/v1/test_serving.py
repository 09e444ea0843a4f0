"""StarGAN v1 from the authors' checkpoint layout to a served model: `python -m stargan_keras.convert` on an
independent PyTorch G and D saved as `{step}-G.ckpt` / `{step}-D.ckpt`, `stargan_keras.load` on the result,
the export's `translate` / `translate_bytes` / `metadata` signatures over the in-test gRPC server, and the
client's `--attrs` (its TFLite file: `tests/test_families.py`)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import yaml

from tests.harness.components import require

torch = require("torch")

import stargan_keras  # noqa: E402
from stargan_keras import convert as convert_cli  # noqa: E402
from stargan_keras.v1.inference import Translator as V1Translator  # noqa: E402
from tests.references.torch_stargan_v1 import build_networks_like, nchw, save_authors_checkpoints  # noqa: E402
from tests.harness.checks import assert_converted, assert_quantized  # noqa: E402
from tests.harness.v1 import make_v1_batches  # noqa: E402

# 64 px, widths 8-16, 2 residual blocks, D with 3 stride-2 convs (an 8x8 head); the v1_celeba preset's 5 attributes
TINY_FLAGS = ["--image-size", "64", "--g-conv-dim", "8", "--d-conv-dim", "8", "--g-repeat-num", "2",
              "--d-repeat-num", "3"]


def tiny_v1():
    from stargan_keras.families import load_config

    return load_config("v1_celeba").replace(image_size=64, g_conv_dim=8, d_conv_dim=8, g_repeat_num=2,
                                            d_repeat_num=3)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """(torch reference G and D, the model directory the convert command wrote from their authors'-layout files)."""
    root = tmp_path_factory.mktemp("v1_convert")
    reference = build_networks_like(tiny_v1().model, seed=3)
    g_path, d_path = save_authors_checkpoints(reference, root)
    argv = [*TINY_FLAGS, "--config", "v1_celeba", "--output", str(root / "model"), "--pytorch-checkpoint", str(g_path),
            "--discriminator-checkpoint", str(d_path)]
    assert convert_cli.main(argv) == 0
    return reference, root / "model"


def test_convert_command_then_load_gives_the_torch_outputs(converted):
    reference, model_dir = converted
    saved = yaml.safe_load((model_dir / "config.yaml").read_text())
    assert saved["model_family"] == "v1" and saved["model"]["image_size"] == 64
    model = stargan_keras.load(model_dir)
    assert isinstance(model, V1Translator)
    assert model.config.model.selected_attrs == ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
    batch = make_v1_batches(1, model.config.model, size=3, seed=5)[0]
    x, c = batch["x_real"], batch["c_trg"]
    with torch.no_grad():
        want = reference["generator"](nchw(x), torch.from_numpy(c)).numpy().transpose(0, 2, 3, 1)
        src_want, cls_want = reference["discriminator"](nchw(x))
    assert_converted(model.generator(x, c), want, "G")
    assert_converted(model.translate(x, c), want, "translate")
    src, cls = model.discriminator(x)
    assert_converted(src, src_want.numpy().transpose(0, 2, 3, 1), "D source")
    assert_converted(cls, cls_want.numpy(), "D classes")


def test_convert_command_names_a_mismatched_flag(tmp_path, capsys):
    reference = build_networks_like(tiny_v1().model, seed=3)
    g_path, _ = save_authors_checkpoints(reference, tmp_path)
    argv = [*TINY_FLAGS, "--config", "v1_celeba", "--c-dim", "4",
            "--selected-attrs", "[Black_Hair,Blond_Hair,Male,Young]", "--output", str(tmp_path / "model"), "--pytorch-checkpoint", str(g_path)]
    assert convert_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "--c-dim" in err and "main.0.weight" in err, err
    assert not (tmp_path / "model").exists()


def test_serving_docs_show_the_v1_table():
    from pathlib import Path

    from stargan_keras.serving.signatures import markdown_table

    assert markdown_table("v1") in (Path(__file__).resolve().parents[2] / "serving" / "README.md").read_text()


NAMES = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]


def test_attrs_parsing_and_its_errors():
    from stargan_keras.serving.client import ServingError, parse_attrs

    np.testing.assert_array_equal(parse_attrs("Blond_Hair=1, Male=0,Young=0.5", NAMES), [0, 1, 0, 0, 0.5])
    np.testing.assert_array_equal(parse_attrs({"Male": 1}, NAMES), [0, 0, 0, 1, 0])  # the rest are 0
    for bad, fragment in [("Blonde_Hair=1", "unknown attribute 'Blonde_Hair'; the model's attributes are "
                                            "Black_Hair, Blond_Hair, Brown_Hair, Male, Young."),
                          ("Male", "'Male' is not NAME=VALUE"), ("Male=yes", "Male='yes' is not a number"),
                          ("Male=1,Male=0", "Male is given twice"), ("=1", "is not NAME=VALUE")]:
        with pytest.raises(ServingError) as info:
            parse_attrs(bad, NAMES)
        assert fragment in str(info.value) and "\n" not in str(info.value), str(info.value)
        assert info.value.code == "INVALID_ARGUMENT"


# -- export, the in-test gRPC server, TFLite (slow) ---------------------------------------------------------------
@pytest.fixture(scope="module")
def exported(converted, tmp_path_factory):
    from benchmarks.saved_model_session import SavedModelSession
    from stargan_keras.serving.export import export_saved_model, load_model
    from tests.harness.serving import MODEL_NAME

    _, model_dir = converted
    model = load_model(model_dir)
    path = export_saved_model(model, tmp_path_factory.mktemp("v1_models") / MODEL_NAME)
    session = SavedModelSession(path)
    yield model, path, session
    session.close()


@pytest.fixture(scope="module")
def grpc_server(exported):
    from tests.harness.serving import start_grpc_server

    _, path, session = exported
    server, address = start_grpc_server(session, int(path.name))
    yield address
    server.stop(grace=None)


def faces(n, size, seed):
    """Smooth colour ramps (so that the 1-level test is not decided by noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    out = [np.stack([np.clip(0.5 + 0.5 * (a * xx + b * yy), 0, 1) for a, b in rng.uniform(-1, 1, (3, 2))], -1)
           for _ in range(n)]
    return np.round(np.stack(out) * 255).astype(np.uint8)


def expected(model, images, labels):
    from stargan_keras.core.imaging import from_uint8

    return model.translate(from_uint8(images), labels).numpy()


@pytest.mark.slow
def test_grpc_translate_answers_as_the_loaded_model(exported, grpc_server):
    from stargan_keras.serving.client import StarGANClient

    model, _, _ = exported
    client = StarGANClient(grpc_server, timeout=60, retries=0)
    assert client.metadata() == {"attribute_names": NAMES, "image_size": 64, "c_dim": 5, "label_type": "attributes"}
    assert client.table.name == "v1"
    images = faces(2, 64, seed=0)
    got = np.stack(client.translate(list(images), "Blond_Hair=1,Male=0,Young=1"))
    assert_quantized(got, expected(model, images, np.tile([[0, 1, 0, 0, 1]], (2, 1)).astype("f4")))
    labels = np.array([[1, 0, 0, 1, 0], [0, 0, 1, 0.5, 1]], np.float32)  # one label vector per image
    raw = client.predict("translate", {"image": images, "target_labels": labels})["image"]
    assert_quantized(raw, expected(model, images, labels))
    big = faces(1, 96, seed=1)  # resized to 64 x 64 in the graph, as v2's images are
    assert client.predict("translate", {"image": big, "target_labels": labels[:1]})["image"].shape == (1, 64, 64, 3)


@pytest.mark.slow
def test_bad_labels_get_invalid_argument_and_the_server_keeps_serving(exported, grpc_server):
    from stargan_keras.serving.client import ServingError, StarGANClient

    client = StarGANClient(grpc_server, timeout=60, retries=0)
    image = faces(1, 64, seed=2)
    good = np.array([[0, 1, 0, 1, 0]], np.float32)
    for labels, fragment in [(np.zeros((1, 4), np.float32), "target_labels must be float32 [N, 5]"),
                             (np.zeros((2, 5), np.float32), "target_labels must be float32 [N, 5]"),
                             (np.array([[0, np.nan, 0, 1, 0]], np.float32), "target_labels must be finite"),
                             (np.array([[0, 1.5, 0, 1, 0]], np.float32), "attribute values must be in [0, 1]"),
                             (np.array([[0, 1, -1, 1, 0]], np.float32), "attribute values must be in [0, 1]")]:
        with pytest.raises(ServingError) as info:
            client.predict("translate", {"image": image, "target_labels": labels})
        assert info.value.code == "INVALID_ARGUMENT" and fragment in str(info.value), str(info.value)
    with pytest.raises(ServingError) as info:
        client.predict("metadata", {"attribute": np.array([b"Bald"], dtype=object)})
    assert info.value.code == "INVALID_ARGUMENT" and "unknown attribute name(s)" in str(info.value)
    assert client.metadata()["c_dim"] == 5  # still answering
    assert client.predict("translate", {"image": image, "target_labels": good})["image"].shape == (1, 64, 64, 3)


@pytest.mark.slow
def test_rest_translate_bytes(exported):
    import threading
    from http.server import ThreadingHTTPServer

    from stargan_keras.serving.client import StarGANClient
    from tests.harness.serving import ExportPredictor, encoded, rest_handler

    model, path, session = exported
    server = ThreadingHTTPServer(("127.0.0.1", 0), rest_handler(ExportPredictor(session, int(path.name))))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = StarGANClient(f"127.0.0.1:{server.server_address[1]}", rest=True, timeout=60, retries=0)
        images = faces(2, 64, seed=3)
        got = np.stack(client.translate([encoded(im, "PNG") for im in images], {"Black_Hair": 1, "Young": 1}))
        assert_quantized(got, expected(model, images, np.tile([[1, 0, 0, 0, 1]], (2, 1)).astype("f4")))
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_client_command_attrs(exported, grpc_server, tmp_path, capsys):
    from PIL import Image

    from stargan_keras import client as client_cli

    model, _, _ = exported
    images = faces(1, 64, seed=4)
    source = tmp_path / "face.png"
    Image.fromarray(images[0]).save(source)
    assert client_cli.main(["--server", grpc_server, "translate", "--image", str(source), "--attrs",
                            "Brown_Hair=1,Male=1", "--out", str(tmp_path / "out.png")]) == 0
    assert_quantized(np.asarray(Image.open(tmp_path / "out.png"))[None],
                            expected(model, images, np.array([[0, 0, 1, 1, 0]], np.float32)))
    capsys.readouterr()
    assert client_cli.main(["--server", grpc_server, "translate", "--image", str(source), "--attrs", "Bald=1",
                            "--out", str(tmp_path / "bad.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown attribute 'Bald'" in err and ", ".join(NAMES) in err, err
    assert client_cli.main(["--server", grpc_server, "latent", "--image", str(source), "--domain", "cat",
                            "--out", str(tmp_path / "v2.png")]) == 2
    assert "needs a StarGAN v2 model" in capsys.readouterr().err


@pytest.mark.slow
def test_warmup_requests_follow_the_v1_table_and_run(exported):
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    from stargan_keras.serving.signatures import SERVING_DEFAULT, TABLES
    from stargan_keras.serving.warmup import WARMUP_FILE

    _, path, session = exported
    family = TABLES["v1"]
    names = []
    for record in tf.data.TFRecordDataset(str(path / WARMUP_FILE)):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        request = log.predict_log.request
        names.append(request.model_spec.signature_name)
        entry = family.signature(request.model_spec.signature_name)
        inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
        assert sorted(inputs) == sorted(t.name for t in entry.inputs)
        assert sorted(session.run(request.model_spec.signature_name, inputs)) == sorted(t.name for t in entry.outputs)
    assert sorted(names) == sorted([*family.names, SERVING_DEFAULT])
