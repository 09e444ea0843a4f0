"""The serving commands (export, tflite, client) under the one error convention (`stargan_keras.core.errors`): a user
error is one line `error: ...` naming the flag, file or value, exit 2, no traceback without --debug; what the
user owns is left as it was; and outputs and inputs are checked before the work (an export, a conversion, a
request) rather than after it."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import hashlib
import shutil
import subprocess
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import keras
import numpy as np
import pytest
from PIL import Image

from benchmarks.saved_model_session import SavedModelSession
from stargan_keras import client as client_cli
from stargan_keras import export as export_cli
from stargan_keras import tflite as tflite_cli
from stargan_keras.core.model_dir import save_networks
from stargan_keras.core.errors import DEBUG_ENV
from stargan_keras.v2.networks import build_networks
from stargan_keras.serving.signatures import TABLES
from tests.harness.networks import free_ports
from tests.harness.serving import encoded, png_bomb

REPO = Path(__file__).resolve().parents[2]


def one_error_line(err: str, *fragments) -> str:
    """The command's stderr is exactly one line, `error: ...`, holding every fragment."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("error: "), err[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def checksums(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_config):
    keras.utils.set_random_seed(5)
    cfg = tiny_config()
    return save_networks(tmp_path_factory.mktemp("model") / "tiny", cfg,
                         build_networks(cfg.model, with_discriminator=False))


@pytest.fixture(scope="module")
def v1_model_dir(tmp_path_factory):
    """A tiny StarGAN v1 model directory: its export is about a third of a v2 export's cost."""
    from stargan_keras.v1.networks import build_networks as build_v1_networks
    from tests.harness.v1 import make_tiny_v1_config

    keras.utils.set_random_seed(5)
    cfg = make_tiny_v1_config()
    return save_networks(tmp_path_factory.mktemp("v1_model") / "tiny", cfg,
                         build_v1_networks(cfg.model, with_discriminator=False))


# -- export ---------------------------------------------------------------------------------------------------------
def test_export_leaves_a_directory_that_is_not_a_serving_base_intact(model_dir, tmp_path, capsys):
    out = tmp_path / "work"
    (out / "sub").mkdir(parents=True)
    (out / "thesis.txt").write_text("four years")
    (out / "sub" / "data.csv").write_text("a,b\n1,2\n")
    before = checksums(out)
    assert export_cli.main(["--checkpoint", str(model_dir), "--output", str(out)]) == 2
    one_error_line(capsys.readouterr().err, f"--output {out} is not a TF Serving model base directory",
                   "sub/, thesis.txt", "--overwrite")
    assert checksums(out) == before and sorted(p.name for p in out.iterdir()) == ["sub", "thesis.txt"]


def test_export_to_a_file_or_under_one_is_one_line(model_dir, tmp_path, capsys):
    file = tmp_path / "models.txt"
    file.write_text("keep")
    for output, fragment in [(file, f"--output {file} is a file"),
                             (file / "stargan", f"--output {file / 'stargan'}: cannot write there")]:
        assert export_cli.main(["--checkpoint", str(model_dir), "--output", str(output)]) == 2
        one_error_line(capsys.readouterr().err, fragment)
    assert file.read_text() == "keep"


def damage(kind: str, model_dir: Path, root: Path) -> Path:
    """A directory export cannot read: empty, absent, or a model or run directory with a damaged file."""
    path = root / kind
    if kind == "empty":
        path.mkdir()
    elif kind in ("config", "weights"):
        shutil.copytree(model_dir, path)
        if kind == "config":
            (path / "config.yaml").write_bytes(b"\xff\xfe not YAML")
        else:
            weights = path / "generator.weights.h5"
            weights.write_bytes(weights.read_bytes()[:1000])
    elif kind == "checkpoint":
        (path / "checkpoints").mkdir(parents=True)
        shutil.copy(model_dir / "config.yaml", path / "config.yaml")
        (path / "checkpoints" / "ckpt-2.index").write_bytes(b"truncated")
        (path / "checkpoints" / "ckpt-2.data-00000-of-00001").write_bytes(b"")
    return path


@pytest.mark.parametrize("kind", ["empty", "absent", "config", "weights", "checkpoint"])
def test_export_from_an_empty_or_damaged_directory_is_one_line(model_dir, tmp_path, capsys, kind):
    checkpoint, output = damage(kind, model_dir, tmp_path), tmp_path / "models"
    assert export_cli.main(["--checkpoint", str(checkpoint), "--output", str(output)]) == 2
    one_error_line(capsys.readouterr().err, str(checkpoint))
    assert not output.exists()


def test_debug_shows_the_traceback(model_dir, tmp_path, capsys, monkeypatch):
    file = tmp_path / "models.txt"
    file.write_text("keep")
    assert export_cli.main(["--checkpoint", str(model_dir), "--output", str(file), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith(f"error: --output {file} is a file")
    monkeypatch.setenv(DEBUG_ENV, "1")
    assert client_cli.main(["latent", "--image", str(file), "--domain", "cat", "--out", str(tmp_path / "o.png")]) == 2
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.slow
def test_export_command_writes_readable_versions_with_its_pixel_limit(model_dir, v1_model_dir, tmp_path, capsys):
    """--overwrite adds a version beside files that are not ours (and keeps them), or replaces a version;
    --max-image-pixels is baked into the export and reported by `metadata`. Replacing a version does not depend
    on the family (`export.check_output` and the staging swap): a v1 model's export, the cheaper one, replaces
    the v2 version."""
    base = tmp_path / "models"
    base.mkdir()
    (base / "NOTES.txt").write_text("ours, not the exporter's")
    flags = ["--checkpoint", str(model_dir), "--output", str(base), "--mean-style-samples", "8"]
    assert export_cli.main([*flags, "--overwrite", "--max-image-pixels", "1024"]) == 0
    version = base / "1"
    assert (base / "NOTES.txt").read_text() == "ours, not the exporter's"
    assert {oct(p.stat().st_mode & 0o777) for p in [version, *version.rglob("*")] if p.is_dir()} == {"0o755"}
    assert {oct(p.stat().st_mode & 0o777) for p in version.rglob("*") if p.is_file()} == {"0o644"}
    session = SavedModelSession(version)
    try:
        assert session.run("metadata", {"domain": np.array([b""], dtype=object)})["max_image_pixels"].tolist() == [1024]
        ok = {"target_domain": np.array([0], np.int32), "z": np.zeros((1, 16), np.float32), "psi": np.float32(1)}
        assert session.run("latent_guided", {**ok, "image": np.zeros((1, 32, 32, 3), np.uint8)})["image"].shape == (
            1, 32, 32, 3)
        with pytest.raises(Exception, match=r"image: H x W is over the limit of 1024 pixels per image"):
            session.run("latent_guided", {**ok, "image": np.zeros((1, 40, 40, 3), np.uint8)})
        big = np.array([encoded(np.zeros((40, 40, 3), np.uint8), "PNG")], dtype=object)
        with pytest.raises(Exception, match=r"image_bytes: images over the limit of 1024 pixels"):
            session.run("latent_guided_bytes", {**ok, "image_bytes": big})
        noise = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)  # 256 pixels, 1 KB as GIF
        gif = np.array([encoded(noise, "GIF")], dtype=object)
        with pytest.raises(Exception, match=r"image_bytes: GIF files over 256 bytes"):
            session.run("latent_guided_bytes", {**ok, "image_bytes": gif})
    finally:
        session.close()
    (base / "NOTES.txt").unlink()  # a TF Serving base directory now
    (version / "stale").write_text("from the version being replaced")
    v1_flags = ["--checkpoint", str(v1_model_dir), "--output", str(base)]
    assert export_cli.main([*v1_flags, "--version", "1"]) == 2
    one_error_line(capsys.readouterr().err, f"{version} already exists", "--overwrite to replace it")
    assert export_cli.main([*v1_flags, "--version", "1", "--overwrite"]) == 0
    assert [p.name for p in base.iterdir()] == ["1"]  # replaced in place, no leftovers
    assert not (version / "stale").exists() and (version / "saved_model.pb").exists()
    assert sorted(p.name for p in (version / "assets").iterdir()) == [TABLES["v1"].names_asset]  # the new model


@pytest.mark.slow
def test_export_exit_status_in_a_process(model_dir, tmp_path):
    file = tmp_path / "models.txt"
    file.write_text("keep")
    result = subprocess.run([sys.executable, "-m", "stargan_keras.export", "--checkpoint", str(model_dir),
                             "--output", str(file)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
        f"error: --output {file} is a file: pass a directory (TF Serving's model base path), e.g. models/stargan."]


# -- tflite ---------------------------------------------------------------------------------------------------------
def test_tflite_errors_are_one_line_and_come_before_the_conversion(tmp_path, capsys):
    no_export, corrupt, file = tmp_path / "nothing", tmp_path / "corrupt", tmp_path / "file.txt"
    no_export.mkdir()
    corrupt.mkdir()
    (corrupt / "saved_model.pb").write_bytes(b"\x08\x01 not a SavedModel")
    file.write_text("keep")
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bomb(20000, 20000))
    cases = [
        (["--saved-model", str(no_export), "--output", str(tmp_path / "a.tflite")], "no saved_model.pb"),
        (["--saved-model", str(corrupt), "--output", str(tmp_path / "a.tflite")], f"--saved-model {corrupt}: cannot "
                                                                                  "load it"),
        (["--saved-model", str(no_export), "--output", str(file / "a.tflite")],  # checked before the export
         f"--output {file / 'a.tflite'}: {file} is a file, not a directory"),
        (["--saved-model", str(no_export), "--output", str(tmp_path / "a.tflite"), "--image", str(bomb)],
         f"--image {bomb} declares 400,000,000 pixels, over the limit"),
    ]
    for argv, fragment in cases:
        assert tflite_cli.main(argv) == 2, argv
        one_error_line(capsys.readouterr().err, fragment)
    assert file.read_text() == "keep"


# -- client ---------------------------------------------------------------------------------------------------------
@pytest.fixture
def image_file(tmp_path):
    path = tmp_path / "cat.png"
    Image.fromarray(np.full((32, 32, 3), 120, np.uint8)).save(path)
    return path


def nowhere():
    """Flags for a server that is not there: a request would fail with "did not answer"."""
    return ["--server", f"127.0.0.1:{free_ports(1)[0]}", "--retries", "0", "--timeout", "2"]


def unwritable_dir(tmp_path) -> Path:
    if os.geteuid() == 0:  # root writes through permission bits: use a place no one can create files in
        return Path("/proc/stargan-keras-test")
    path = tmp_path / "read-only"
    path.mkdir(mode=0o500)
    return path


def test_client_refuses_an_out_it_cannot_write_before_sending(image_file, tmp_path, capsys):
    file = tmp_path / "results.txt"
    file.write_text("keep")
    (tmp_path / "a_dir.png").mkdir()
    locked = unwritable_dir(tmp_path)
    cases = [(file / "dog.png", f"--out {file / 'dog.png'}: {file} is a file, not a directory"),
             (tmp_path / "a_dir.png", f"--out {tmp_path / 'a_dir.png'} is a directory"),
             (locked / "dog.png", f"--out {locked / 'dog.png'}: cannot write there")]
    for out, fragment in cases:
        assert client_cli.main(["latent", *nowhere(), "--image", str(image_file), "--domain", "dog",
                                "--out", str(out)]) == 2
        one_error_line(capsys.readouterr().err, fragment)  # not "did not answer": nothing was sent
    assert file.read_text() == "keep"


@pytest.mark.parametrize("transport", [[], ["--rest"]])
def test_client_refuses_an_image_over_the_pixel_limit_before_sending(tmp_path, capsys, transport, image_file):
    bombs = {(20000, 20000): "declares 400,000,000 pixels", (9000, 9000): "is 9000 x 9000 = 81,000,000 pixels"}
    for (width, height), fragment in bombs.items():
        path = tmp_path / f"{width}.png"
        path.write_bytes(png_bomb(width, height))
        out = str(tmp_path / "out.png")
        assert client_cli.main(["latent", *transport, *nowhere(), "--image", str(path), "--domain", "dog",
                                "--out", out]) == 2
        one_error_line(capsys.readouterr().err, f"{path} {fragment}, over the limit of 67,108,864 pixels")
        assert client_cli.main(["reference", *transport, *nowhere(), "--image", str(image_file), "--reference",
                                str(path), "--domain", "dog", "--out", out]) == 2
        one_error_line(capsys.readouterr().err, f"{path} {fragment}")


def test_client_says_which_port_it_probably_meant(capsys):
    """--rest against TF Serving's gRPC port answers HTTP/2 frames (binary junk to an HTTP/1.1 client), and gRPC
    against the REST port gets HTTP/1.1: each is one line naming the other port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    http = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    http.RequestHandlerClass.log_message = lambda *args: None
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        assert client_cli.main(["--rest", "--server", f"127.0.0.1:{grpc_port}", "--retries", "0", "metadata"]) == 2
        one_error_line(capsys.readouterr().err, "did not answer in HTTP/1.1 (REST): it is probably TF Serving's "
                                                "gRPC port (8500); drop --rest")
        assert client_cli.main(["--server", f"127.0.0.1:{http.server_address[1]}", "--retries", "0",
                                "metadata"]) == 2
        one_error_line(capsys.readouterr().err, "did not answer in HTTP/2 (gRPC): it is probably TF Serving's "
                                                "REST port (8501); pass --rest")
    finally:
        server.stop(grace=None)
        http.shutdown()
        http.server_close()


def test_client_exit_status_in_a_process(image_file, tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bomb(20000, 20000))
    result = subprocess.run([sys.executable, "-m", "stargan_keras.client", "latent", *nowhere(), "--image", str(bomb),
                             "--domain", "dog", "--out", str(tmp_path / "o.png")],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    one_error_line(result.stderr, f"error: {bomb} declares 400,000,000 pixels")
