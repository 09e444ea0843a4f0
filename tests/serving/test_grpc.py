"""The client against a PredictionService over a real gRPC channel on 127.0.0.1 (and over REST):
round trips match the Keras networks, bad requests come back as readable INVALID_ARGUMENT / NOT_FOUND /
FAILED_PRECONDITION errors, and the server keeps answering. The in-test servers run the exported
signatures through the session-based loader, the way TF Serving does, and answer errors as its
predict_util.cc does; when `tensorflow_model_server` is on PATH the same tests run against it."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import shutil
import subprocess
import threading
import time
from http.server import ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from stargan_keras import client as client_cli
from stargan_keras.core.imaging import from_uint8
from stargan_keras.serving.client import ServingError, StarGANClient
from tests.harness.networks import free_ports
from tests.harness.serving import MODEL_NAME, ExportPredictor, rest_handler, start_grpc_server
from tests.harness.checks import assert_quantized, smooth_images

pytestmark = pytest.mark.slow  # in-process gRPC and HTTP servers (and tensorflow_model_server when installed)


@pytest.fixture(scope="module", params=["in_test", "tensorflow_model_server"])
def grpc_server(request, v2_served):
    """The address of a PredictionService serving the export."""
    _, path, session = v2_served
    if request.param == "in_test":
        server, address = start_grpc_server(session, int(path.name))
        yield address
        server.stop(grace=None)
        return
    binary = shutil.which("tensorflow_model_server")
    if binary is None:
        pytest.skip("tensorflow_model_server is not on PATH (it is the tensorflow/serving container's binary)")
    port, rest_port = free_ports(2)
    process = subprocess.Popen([binary, f"--port={port}", f"--rest_api_port={rest_port}",
                                f"--model_name={MODEL_NAME}", f"--model_base_path={path.parent.resolve()}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        StarGANClient(f"127.0.0.1:{port}", timeout=10, retries=8).metadata()
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def rest_server(v2_served):
    _, path, session = v2_served
    server = ThreadingHTTPServer(("127.0.0.1", 0), rest_handler(ExportPredictor(session, int(path.name))))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def keras_latent(model, images, domain, seed):
    z = np.random.default_rng(seed).standard_normal((1, 16)).astype(np.float32).repeat(len(images), 0)
    styles = model.mapping_network(z, np.full((len(images),), domain, np.int32))
    return model.generator(from_uint8(images), styles).numpy()


def keras_reference(model, images, references, domain):
    styles = model.style_encoder(from_uint8(references), np.full((len(images),), domain, np.int32))
    return model.generator(from_uint8(images), styles).numpy()


def test_round_trip_matches_the_keras_networks(v2_served, grpc_server):
    model, _, _ = v2_served
    client = StarGANClient(grpc_server, timeout=30, retries=0)
    assert client.metadata() == {"domain_names": ["cat", "dog", "wild"], "img_size": 32, "num_domains": 3,
                                 "latent_dim": 16, "style_dim": 64}
    images, references = smooth_images(2, 32, seed=0), smooth_images(2, 32, seed=1)
    assert_quantized(np.stack(client.latent(list(images), "dog", seed=3)), keras_latent(model, images, 1, 3))
    assert_quantized(np.stack(client.reference(list(images), list(references), "wild")),
                        keras_reference(model, images, references, 2))
    mixed = client.latent([images[0], smooth_images(1, 48, seed=2)[0]], 0, seed=1)  # sizes differ: resized
    assert [m.shape for m in mixed] == [(32, 32, 3), (32, 32, 3)]


def expect_error(call, code, *fragments):
    with pytest.raises(ServingError) as info:
        call()
    assert info.value.code == code, str(info.value)
    for fragment in fragments:
        assert fragment in str(info.value)
    return str(info.value)


def test_bad_requests_come_back_readable_and_the_server_keeps_answering(v2_served, grpc_server):
    client = StarGANClient(grpc_server, timeout=30, retries=0)
    image = smooth_images(1, 32, seed=4)
    ok = {"image": image, "target_domain": np.array([0], np.int32), "z": np.zeros((1, 16), np.float32),
          "psi": np.float32(1.0)}
    expect_error(lambda: client.predict("latent_guided", {**ok, "target_domain": np.array([7], np.int32)}),
                 "INVALID_ARGUMENT", "target_domain must hold domain indices in [0, 3) (0=cat, 1=dog, 2=wild)")
    expect_error(lambda: client.predict("latent_guided", {**ok, "image": np.zeros((1, 32, 32, 4), np.uint8)}),
                 "INVALID_ARGUMENT", "image must be uint8 [N, H, W, 3]")
    corrupt = {**ok, "image_bytes": np.array([b"\x89PNG this is not a PNG"], dtype=object)}
    del corrupt["image"]
    expect_error(lambda: client.predict("latent_guided_bytes", corrupt), "INVALID_ARGUMENT", "PNG")
    garbage = {**corrupt, "image_bytes": np.array([b"garbage"], dtype=object)}
    expect_error(lambda: client.predict("latent_guided_bytes", garbage), "INVALID_ARGUMENT",
                 "image_bytes: entries that are not JPEG, PNG, GIF or BMP data")
    expect_error(lambda: client.predict("no_such_signature", ok), "FAILED_PRECONDITION",
                 'Serving signature key "no_such_signature" not found', "Export it again")
    expect_error(lambda: StarGANClient(grpc_server, model_name="horse", retries=0).metadata(), "NOT_FOUND",
                 "model 'horse' is not served", "--model-name")
    expect_error(lambda: client.latent([image[0]], "horse"), "INVALID_ARGUMENT", "unknown domain 'horse'",
                 "cat, dog, wild")
    assert client.latent([image[0]], "cat")[0].shape == (32, 32, 3)  # still answering


def test_a_request_missing_an_input_is_reported_as_such(grpc_server):
    """Not as a missing signature ("Export it again"): the inputs the request lacks, or has too many, by name."""
    client = StarGANClient(grpc_server, timeout=30, retries=0)
    ok = {"image": smooth_images(1, 32, seed=4), "target_domain": np.array([0], np.int32),
          "z": np.zeros((1, 16), np.float32), "psi": np.float32(1.0)}
    without_z = {key: value for key, value in ok.items() if key != "z"}
    message = expect_error(lambda: client.predict("latent_guided", without_z), "INVALID_ARGUMENT",
                           "rejected the 'latent_guided' request: missing input(s) z (it takes image, "
                           "target_domain, z, psi)")
    assert "has no signature" not in message and "Export it again" not in message
    renamed = {**without_z, "latent": ok["z"]}
    message = expect_error(lambda: client.predict("latent_guided", renamed), "INVALID_ARGUMENT",
                           "missing input(s) z; unknown input(s) latent")
    assert "has no signature" not in message


def test_a_server_that_is_down_gives_a_clear_error_after_the_retries():
    start = time.perf_counter()
    message = expect_error(lambda: StarGANClient(f"127.0.0.1:{free_ports(1)[0]}", timeout=2, retries=1).metadata(),
                           "UNAVAILABLE", "did not answer", "after 2 attempt(s)", "serving/README.md")
    assert time.perf_counter() - start < 10, message


def test_cli_writes_one_png_per_image(v2_served, grpc_server, tmp_path, capsys):
    model, _, _ = v2_served
    images = smooth_images(2, 32, seed=5)
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"in{i}.png")
        Image.fromarray(image).save(paths[-1])
    out = tmp_path / "results"
    assert client_cli.main(["--server", grpc_server, "latent", "--image", *map(str, paths), "--domain", "wild",
                            "--seed", "3", "--out", str(out)]) == 0
    written = np.stack([np.asarray(Image.open(out / f"in{i}.png")) for i in range(2)])
    assert_quantized(written, keras_latent(model, images, 2, 3))
    assert client_cli.main(["reference", "--server", grpc_server, "--image", str(paths[0]), "--reference",
                            str(paths[1]), "--domain", "dog", "--out", str(tmp_path / "ref.png")]) == 0
    assert_quantized(np.asarray(Image.open(tmp_path / "ref.png"))[None],
                        keras_reference(model, images[:1], images[1:], 1))
    assert client_cli.main(["--server", grpc_server, "latent", "--image", str(paths[0]), "--domain", "fox",
                            "--out", str(tmp_path / "x.png")]) == 2  # a user error: exit 2, one line
    assert "unknown domain 'fox'" in capsys.readouterr().err


def test_rest_round_trip_and_error(v2_served, rest_server, tmp_path):
    model, _, _ = v2_served
    client = StarGANClient(rest_server, rest=True, timeout=30, retries=0)
    assert client.metadata()["domain_names"] == ["cat", "dog", "wild"]
    images, references = smooth_images(2, 32, seed=6), smooth_images(2, 32, seed=7)
    files = []
    for i, image in enumerate(images):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(image).save(files[-1])
    assert_quantized(np.stack(client.latent(files, "cat", seed=5)), keras_latent(model, images, 0, 5))
    assert_quantized(np.stack(client.reference(list(images), list(references), "dog")),
                        keras_reference(model, images, references, 1))
    bad = {"image_bytes": np.array([files[0].read_bytes()], dtype=object), "target_domain": np.array([5], np.int32),
           "z": np.zeros((1, 16), np.float32), "psi": np.float32(1.0)}
    expect_error(lambda: client.predict("latent_guided_bytes", bad), "INVALID_ARGUMENT", "target_domain")
