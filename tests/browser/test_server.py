"""The demo command without a browser: what it serves, from where, and how it refuses what it cannot use."""

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from stargan_keras import demo
from stargan_keras.browser.server import PAGE_DIR, DemoError, DemoModel, find_litert, latent_from_seed, make_server, routes, url
from tests.harness.demo import fake_litert, start_demo, stop


def get(address, path):
    """(status, headers, body) of a GET."""
    try:
        with urllib.request.urlopen(address.rstrip("/") + path, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, b""


def test_the_server_serves_its_files_and_nothing_else(tmp_path):
    litert = fake_litert(tmp_path)
    assert find_litert([tmp_path / "elsewhere", tmp_path]) == litert
    model_file = tmp_path / "m.tflite"
    model_file.write_bytes(b"TFL3")
    secret = tmp_path / "node_modules" / "secret.txt"
    secret.write_text("not for the page")
    server = make_server(DemoModel(model_file, {"img_size": 32}), tmp_path, port=0, litert=litert)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        address = url(server)
        assert address.startswith("http://127.0.0.1:")
        status, headers, body = get(address, "/")
        assert status == 200 and b'<script type="module" src="app.js">' in body
        assert headers["Cross-Origin-Embedder-Policy"] == "require-corp"  # LiteRT.js threads need isolation
        assert get(address, "/model.tflite")[2] == b"TFL3"
        assert get(address, "/model.json")[2] == b'{\n "img_size": 32\n}'
        assert get(address, "/app.js")[1]["Content-Type"] == "text/javascript"
        status, headers, _ = get(address, "/litert/core/wasm/litert.wasm")
        assert (status, headers["Content-Type"]) == (200, "application/wasm")
        assert get(address, "/litert/wasm-utils/dist/index.js")[0] == 200
        for path in ("/litert/core/dist/../../../secret.txt", "/litert/core/dist/%2e%2e/%2e%2e/%2e%2e/secret.txt",
                     "/litert/core/", "/litert/", "/secret.txt", "/m.tflite", "/../m.tflite", "/etc/passwd"):
            assert get(address, path)[0] == 404, path
    finally:
        server.shutdown()
        server.server_close()


def test_routes_cover_the_page_and_what_its_import_map_names(tmp_path):
    table = routes(DemoModel(tmp_path / "m.tflite", {}), tmp_path / "model.json", fake_litert(tmp_path))
    page = (PAGE_DIR / "index.html").read_text()
    for path in ("./litert/core/dist/index.js", "./litert/wasm-utils/dist/index.js", "style.css", "app.js"):
        assert path in page
    assert {"/", "/app.js", "/style.css", "/model.tflite", "/model.json", "/litert/core/wasm/"} <= set(table)


@pytest.mark.parametrize("model, content, flags, message", [
    ("absent.tflite", None, [], "--model {}: no such file or directory"),
    ("", None, [], "--model {}: a directory with neither saved_model.pb"),
    ("x.tflite", b"not a model", [], "--model {}: not a TFLite file"),
    ("y.tflite", b"TFL3", ["--quantize", "dynamic"], "--quantize dynamic: the .tflite file {} is served as it is"),
    ("", None, ["--port", "70000"], "--port 70000: pass a port from 1 to 65535"),
    ("", None, ["--mean-style-samples", "0"], "--mean-style-samples 0: pass at least 1"),
])
def test_user_errors_name_the_flag_and_exit_2(tmp_path, capsys, model, content, flags, message):
    path = tmp_path / model
    if content is not None:
        path.write_bytes(content)
    assert demo.main(["--model", str(path), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: " + message.format(path)), err
    assert len(err.splitlines()) == 1


def test_a_missing_litert_is_a_user_error(tmp_path):
    with pytest.raises(DemoError, match=r"run `npm ci` in the repository root"):
        find_litert([tmp_path])


def test_latent_from_seed_is_standard_normal():
    z = latent_from_seed(7, 20_001)
    assert z.dtype.name == "float32" and z.shape == (20_001,)
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.03
    assert (latent_from_seed(7, 16) == z[:16]).all() and not (latent_from_seed(8, 16) == z[:16]).all()


@pytest.mark.slow
@pytest.mark.needs("litert")
def test_the_command_converts_a_model_directory_and_serves_it(tmp_path, tiny_config):
    from stargan_keras.core.model_dir import save_networks
    from stargan_keras.v2.networks import build_networks

    config = tiny_config()
    save_networks(tmp_path / "model", config, build_networks(config.model, with_discriminator=False))
    process, address = start_demo("--model", str(tmp_path / "model"), "--mean-style-samples", "50")
    try:
        assert any(line.startswith("converting ") for line in process.lines)  # the progress lines
        status, _, body = get(address, "/model.json")
        meta = json.loads(body)
        assert status == 200 and meta["domain_names"] == ["cat", "dog", "wild"]
        assert {k: meta[k] for k in ("img_size", "latent_dim", "style_dim", "num_domains")} == \
            {"img_size": 32, "latent_dim": 16, "style_dim": 64, "num_domains": 3}
        assert get(address, "/model.tflite")[2][4:8] == b"TFL3"
        served = Path(next(line for line in process.lines if line.startswith("serving ")).split()[1])
        assert served.exists()
    finally:
        assert stop(process) == 130  # SIGTERM
    assert not served.exists()  # the converted files go with the server

