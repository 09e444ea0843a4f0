"""The authors' models by name: download through a mirror, convert as `convert` does, cache, open offline.

The presets keep their names, file names and code path; their networks are shrunk through the
config overrides (`tests.harness.presets.tiny_presets`), and the files, in the authors' layouts with
random weights, are served from 127.0.0.1 through STARGAN_KERAS_MIRROR.
"""

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import stargan_keras
from stargan_keras.presets import PRESETS, PresetError, cache, download, resolve_model
from stargan_keras.presets.archive import extract_v1_checkpoints
from stargan_keras.presets.command import main as presets_main
from tests.harness.presets import Mirror, authors_files, tiny_presets, v2_nets_ema
from stargan_keras import families
from stargan_keras import train as train_cli
from stargan_keras.core.safe_files import MARKER_FILE
from tests.harness.components import require

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh cache, no mirror, downloads allowed, no waiting between retries."""
    root = tmp_path / "cache"
    monkeypatch.setenv(cache.HOME_ENV, str(root))
    monkeypatch.delenv(cache.MIRROR_ENV, raising=False)
    monkeypatch.delenv(cache.OFFLINE_ENV, raising=False)
    monkeypatch.setattr(download, "BACKOFF_S", 0.0)
    return root


@pytest.fixture
def tiny(monkeypatch):
    """The tiny presets in place of the real ones, for this test."""
    presets = tiny_presets()
    for name, preset in presets.items():
        monkeypatch.setitem(PRESETS, name, preset)
    return presets


@pytest.fixture(scope="module")
def files():
    """{preset: {file name: bytes}} in the authors' layouts (random weights), made once."""
    require("torch")
    return {name: authors_files(preset) for name, preset in tiny_presets().items()}


@pytest.fixture
def mirror(files, home, monkeypatch):
    server = Mirror()
    for name, served in files.items():
        server.add(name, served)
    monkeypatch.setenv(cache.MIRROR_ENV, server.url + "/")
    yield server
    server.stop()


def _nothing_left(home: Path, name: str):
    models = home / "models"
    assert not (models / name).exists()
    assert not list(models.glob(f".{name}.*")) if models.exists() else True


def _convert_like_the_command(preset, served: dict, tmp_path: Path) -> Path:
    """`python -m stargan_keras.convert` on the same files, with the preset's config as a YAML file."""
    from stargan_keras.convert import main as convert_main

    folder = tmp_path / "by_hand"
    folder.mkdir()
    for name, body in served.items():
        (folder / name).write_bytes(body)
    config_file = tmp_path / "preset.yaml"
    preset.config().save(config_file)
    output = tmp_path / "converted"
    if preset.family == "v1":
        generator, discriminator = extract_v1_checkpoints(folder / preset.file("zip").name, folder)
        argv = ["--pytorch-checkpoint", str(generator), "--discriminator-checkpoint", str(discriminator)]
    else:
        argv = ["--pytorch-checkpoint", str(folder / "100000_nets_ema.ckpt")]
        if preset.file("fan") is not None:
            argv += ["--fan-checkpoint", str(folder / "wing.ckpt")]
    assert convert_main(argv + ["--config", str(config_file), "--output", str(output)]) == 0
    return output


def _translation(model, seed=0):
    """One translation of random images (latent-guided for v2: G, F and, for CelebA-HQ, the FAN's masks), run
    eagerly: it is compared with another load's translation, run the same way, and tracing the translator (the
    FAN's hundreds of layers) would cost more than running it."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    eager = tf.config.functions_run_eagerly()
    tf.config.run_functions_eagerly(True)
    try:
        if model.config.model_family == "v1":
            size, width = model.config.model.image_size, model.config.model.c_dim
            x = rng.uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
            return np.asarray(model.translate(x, rng.integers(0, 2, (2, width)).astype(np.float32)))
        cfg = model.config.model
        x = rng.uniform(-1, 1, (2, cfg.img_size, cfg.img_size, 3)).astype(np.float32)
        z = rng.standard_normal((2, cfg.latent_dim)).astype(np.float32)
        return np.asarray(model.latent_guided(x, np.array([1, 0], np.int32), z))
    finally:
        tf.config.run_functions_eagerly(eager)


def _weights(model) -> dict:
    """Every network's weights by network and upstream tensor name (the FAN's too)."""
    from stargan_keras.face.fan import fan_variables
    from stargan_keras.core.layers import torch_named_variables

    named = {name: torch_named_variables(net) for name, net in model.networks.items()}
    if getattr(model.networks, "fan", None) is not None:
        named["fan"] = fan_variables(model.networks.fan)
    return {(name, key): np.asarray(v) for name, variables in named.items() for key, v in variables.items()}


def _assert_same_weights(got, want):
    assert got.keys() == want.keys()
    for key, value in want.items():
        np.testing.assert_array_equal(got[key], value, err_msg=str(key))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PRESETS))
def test_a_preset_downloads_converts_and_translates_as_convert_does_then_works_offline(
        name, tiny, mirror, files, home, tmp_path, capsys):
    model = stargan_keras.load(name)
    first = capsys.readouterr().err
    assert ("CC BY-NC 4.0" in first) == (tiny[name].family == "v2") and first.count(tiny[name].terms) == 1
    directory = home / "models" / name
    record = json.loads((directory / "source.json").read_text())
    served = files[name]
    assert [(f["file"], f["bytes"], f["sha256"], f["url"]) for f in record["files"]] == [
        (n, len(b), hashlib.sha256(b).hexdigest(), f"{mirror.url}/{name}/{n}") for n, b in served.items()]
    assert not (home / "downloads" / name).exists()  # converted, the downloads are not kept twice
    if "celeba_lm_mean.npz" in served:
        assert (directory / "celeba_lm_mean.npz").read_bytes() == served["celeba_lm_mean.npz"]
        from stargan_keras.face.model_files import face_network
        from stargan_keras.face.fan import fan_variables

        # fine-tuning it (train --init-from NAME) takes its FAN as --fan-checkpoint, since wing.ckpt is not kept
        config = model.config.replace(fan_checkpoint=str(directory / "fan.weights.h5"))
        run_fan = fan_variables(face_network(config, tmp_path / "run"))
        for key, variable in fan_variables(model.networks.fan).items():
            np.testing.assert_array_equal(np.asarray(run_fan[key]), np.asarray(variable), err_msg=key)

    converted = stargan_keras.load(_convert_like_the_command(tiny[name], served, tmp_path))
    _assert_same_weights(_weights(model), _weights(converted))
    want = _translation(converted)
    assert np.abs(want).max() > 0.05
    np.testing.assert_array_equal(_translation(model), want)

    mirror.stop()  # later uses need no network
    capsys.readouterr()
    again = stargan_keras.load(name)
    assert "downloading" not in capsys.readouterr().err
    _assert_same_weights(_weights(again), _weights(converted))


@pytest.mark.slow
def test_an_interrupted_download_resumes_where_it_stopped(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "BACKOFF_S", 0.0)
    body = np.random.default_rng(0).bytes(300_000)
    server = Mirror({"/f.bin": body})
    try:
        server.cut["/f.bin"] = 120_000  # the first answer stops a little past a third
        path = download.fetch(f"{server.url}/f.bin", tmp_path / "f.bin", progress=False)
        assert path.read_bytes() == body
        assert server.requests == [("/f.bin", None), ("/f.bin", "bytes=120000-")]
        assert not (tmp_path / "f.bin.part").exists()

        (tmp_path / "g.bin.part").write_bytes(body[:50_000])  # left by a process killed earlier
        server.files["/g.bin"] = body
        assert download.fetch(f"{server.url}/g.bin", tmp_path / "g.bin", progress=False).read_bytes() == body
        assert server.requests[-1] == ("/g.bin", "bytes=50000-")
    finally:
        server.stop()


def _run_sample(name, images, capsys) -> tuple[int, str]:
    from stargan_keras.sample import main as sample_main

    code = sample_main(["--checkpoint", name, "--src", str(images), "--ref", str(images), "--out",
                        str(images.parent / "out"), "--quiet"])
    return code, capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "other_networks", "html"])
def test_a_truncated_or_wrong_file_is_refused_in_one_line_and_leaves_no_model(
        damage, tiny, mirror, files, home, tmp_path, capsys):
    name, path = "stargan_v2_afhq", "/stargan_v2_afhq/100000_nets_ema.ckpt"
    good = mirror.files[path]
    two_domains = tiny[name].config().replace(num_domains=2, domain_names=[]).model
    mirror.files[path] = {"truncated": good[: len(good) // 2], "other_networks": v2_nets_ema(two_domains),
                          "html": b"<!DOCTYPE html><html>Dropbox</html>"}[damage]
    code, err = _run_sample(name, tmp_path / "images", capsys)
    errors = [line for line in err.splitlines() if line.startswith("error")]
    assert code == 2 and errors == [err.splitlines()[-1]] and errors[0].startswith(f"error: preset {name}: ")
    assert {"truncated": "truncated or corrupt", "html": "HTML page", "other_networks": "do not fit the config "
            "(nothing was written)"}[damage] in err
    if damage == "other_networks":
        assert "the checkpoint has 2 domains, the config says --num-domains 3" in err
    _nothing_left(home, name)
    assert not (home / "downloads" / name / "100000_nets_ema.ckpt").exists()  # the next run downloads again
    if damage == "truncated":
        mirror.files[path] = good
        assert stargan_keras.load(name).config.model.num_domains == 3


@pytest.mark.slow
def test_two_first_uses_at_once_give_one_intact_model_directory(files, home, tmp_path, warm_python):
    """Two processes (forked from the warm interpreter) load the same preset at once."""
    server = Mirror(delay_s=3.0)  # the first process holds the lock while the second starts
    server.add("stargan_v2_afhq", files["stargan_v2_afhq"])
    env = {**warm_python.env, cache.HOME_ENV: str(home), cache.MIRROR_ENV: server.url}
    try:
        processes = [warm_python.popen(["-m", "tests.harness.presets", "load", "stargan_v2_afhq"], cwd=ROOT, env=env)
                     for _ in range(2)]
        results = [(p.wait(timeout=300), *p.communicate()) for p in processes]
    finally:
        server.stop()
    assert [code for code, _, _ in results] == [0, 0], results
    assert all(out.strip() == "loaded Translator" for _, out, _ in results)
    assert server.gets("/stargan_v2_afhq/100000_nets_ema.ckpt") == 1
    models = home / "models"
    assert sorted(p.name for p in models.iterdir()) == ["stargan_v2_afhq"]
    assert {p.name for p in (models / "stargan_v2_afhq").iterdir()} == {
        "config.yaml", "generator.weights.h5", "mapping_network.weights.h5", "style_encoder.weights.h5",
        "source.json", MARKER_FILE}


@pytest.mark.slow
def test_sample_export_demo_and_train_take_a_preset_name(tiny, mirror, home, tmp_path, capsys, monkeypatch):
    from PIL import Image

    from stargan_keras.browser import server as browser_demo
    from stargan_keras.core.imaging import load_image, save_image
    from stargan_keras.export import main as export_main

    images = tmp_path / "images"
    rng = np.random.default_rng(0)
    for domain in ("cat", "dog"):
        (images / domain).mkdir(parents=True)
        for image in ("a.png", "b.png"):
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), np.uint8)).save(images / domain / image)
    code, err = _run_sample("stargan_v2_afhq", images, capsys)
    assert code == 0, err
    assert (tmp_path / "out" / "latent_psi_1.0.jpg").is_file() and (tmp_path / "out" / "reference.jpg").is_file()

    model = stargan_keras.load("stargan_v2_afhq")  # the README's Python lines, at the tiny model's sizes
    save_image(tmp_path / "dog.png", model.latent_guided(load_image(images / "cat" / "a.png", 32)[None], np.int32([1]),
                                                         np.float32(np.random.randn(1, 8)))[0])
    assert Image.open(tmp_path / "dog.png").size == (32, 32)

    assert export_main(["--checkpoint", "stargan_v2_afhq", "--output", str(tmp_path / "models"),
                        "--mean-style-samples", "4"]) == 0
    assert (tmp_path / "models" / "1" / "saved_model.pb").is_file()

    exported = []  # the demo exports the model directory as the export command did: reuse that export

    def export_once(model_dir, output, mean_style_samples):
        exported.append(model_dir)
        return tmp_path / "models" / "1", families.read_config(Path(model_dir) / "config.yaml")

    monkeypatch.setattr(browser_demo, "_export", export_once)
    demo = browser_demo.prepare_model("stargan_v2_afhq", tmp_path / "demo", mean_style_samples=4)
    assert exported == [home / "models" / "stargan_v2_afhq"]
    assert demo.tflite.is_file() and demo.metadata["domain_names"] == ["cat", "dog", "wild"]

    from stargan_keras.serving import export as serving_export
    from stargan_keras.tflite import main as tflite_main

    def export_as_the_command_did(translator, output_dir, **kwargs):
        """tflite exports the preset it loaded as the export command did above: reuse that export."""
        exported.append(translator)
        return tmp_path / "models" / "1"

    monkeypatch.setattr(serving_export, "export_saved_model", export_as_the_command_did)
    assert tflite_main(["--saved-model", "stargan_v2_afhq", "--output", str(demo.tflite), "--check", "--runs",
                        "1"]) == 0  # checked against the preset's export
    assert exported[-2] == home / "models" / "stargan_v2_afhq" and "latent_guided" in capsys.readouterr().out
    assert exported[-1].config.model.domain_names == ["cat", "dog", "wild"]  # the preset, loaded by name

    start = train_cli._warm_start(train_cli.build_parser().parse_args(["--init-from", "stargan_v2_afhq"]),
                                  families.load_config("afhq"))  # as `train --init-from stargan_v2_afhq` resolves it
    assert start.source == home / "models" / "stargan_v2_afhq"
    assert len([line for line in mirror.requests if line[0].startswith("/stargan_v2_afhq/")]) == 1


def test_offline_or_unreachable_names_the_url_and_where_to_put_the_file(home, monkeypatch):
    preset = PRESETS["stargan_v2_afhq"]
    by_hand = home / "downloads" / "stargan_v2_afhq" / "100000_nets_ema.ckpt"
    monkeypatch.setenv(cache.OFFLINE_ENV, "1")
    with pytest.raises(PresetError, match="STARGAN_KERAS_OFFLINE=1 forbids downloading https://www.dropbox.com/s/"
                                          "etwm810v25h42sn/100000_nets_ema.ckpt\\?dl=1") as err:
        resolve_model("stargan_v2_afhq")
    assert str(by_hand) in str(err.value)
    monkeypatch.delenv(cache.OFFLINE_ENV)
    from tests.harness.networks import free_ports

    (port,) = free_ports(1)  # nothing listens there
    monkeypatch.setenv(cache.MIRROR_ENV, f"http://127.0.0.1:{port}")
    with pytest.raises(PresetError) as err:
        cache.ensure(preset)
    message = str(err.value)
    assert f"cannot download http://127.0.0.1:{port}/stargan_v2_afhq/100000_nets_ema.ckpt" in message
    assert str(by_hand) in message and preset.file("nets_ema").url in message and "\n" not in message
    _nothing_left(home, "stargan_v2_afhq")


def test_a_full_disk_is_said_before_any_download(home, monkeypatch):
    import shutil

    monkeypatch.setattr(cache.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**10, 10**10 - 10**6,
                                                                                          10**6))
    monkeypatch.setenv(cache.MIRROR_ENV, "http://127.0.0.1:9")  # never reached
    with pytest.raises(PresetError, match=r"no room for preset stargan_v2_afhq .*\(1 MB free, about 465 MB needed"):
        resolve_model("stargan_v2_afhq")
    _nothing_left(home, "stargan_v2_afhq")


def test_a_command_given_an_unknown_name_lists_the_presets(home, capsys):
    from stargan_keras.export import main as export_main

    assert export_main(["--checkpoint", "stargan_v2_cats", "--output", str(home / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'stargan_v2_cats' is not a model directory nor a preset" in err
    assert "stargan_v2_afhq, stargan_v2_celeba_hq, stargan_celeba_128, stargan_celeba_256" in err


def test_a_file_put_in_the_cache_by_hand_is_converted_without_network(files, tiny, home, monkeypatch, capsys):
    monkeypatch.setenv(cache.OFFLINE_ENV, "1")
    hand = home / "downloads" / "stargan_celeba_256"
    hand.mkdir(parents=True)
    (hand / "celeba-256x256-5attrs.zip").write_bytes(files["stargan_celeba_256"]["celeba-256x256-5attrs.zip"])
    path = resolve_model("stargan_celeba_256")
    assert (path / "generator.weights.h5").is_file() and (path / "discriminator.weights.h5").is_file()
    assert (hand / "celeba-256x256-5attrs.zip").is_file()  # not ours to delete
    assert json.loads((path / "source.json").read_text())["files"][0]["url"].endswith("zdq6roqf63m0v5f/"
                                                                                      "celeba-256x256-5attrs.zip?dl=1")


def test_unknown_names_list_the_presets_and_paths_pass_through(tmp_path, home, capsys):
    with pytest.raises(PresetError, match="did you mean stargan_v2_afhq.*stargan_celeba_256"):
        resolve_model("stargan_v2_afqh")
    assert resolve_model(tmp_path / "runs" / "x") == tmp_path / "runs" / "x"  # the caller says it is missing
    own = tmp_path / "stargan_v2_afhq"
    own.mkdir()
    (own / "config.yaml").write_text("model: {}\n")
    assert resolve_model(own) == own  # a model directory of that name wins
    assert presets_main(["--fetch", "stargan_v3"]) == 2
    assert capsys.readouterr().err.startswith("error: 'stargan_v3' is not a preset")


def test_the_presets_command_lists_size_resolution_labels_and_license(home, capsys):
    assert presets_main([]) == 0
    out = capsys.readouterr().out
    for name in PRESETS:
        assert name in out
    assert "cat, dog, wild" in out and "female, male" in out and "Black_Hair, Blond_Hair" in out
    assert "CC BY-NC 4.0, NAVER Corp." in out and "yunjey/stargan, MIT" in out and "232 MB" in out


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in members.items():
            zf.writestr(name, body)
    return buffer.getvalue()


def test_a_zip_bomb_is_refused_before_anything_is_decompressed(tmp_path):
    from stargan_keras.core.torch_io import ConversionError

    archive = tmp_path / "bomb.zip"
    archive.write_bytes(_zip({"200000-G.ckpt": bytes(50 * 2**20)}))
    into = tmp_path / "into"
    into.mkdir()
    with pytest.raises(ConversionError, match="zip bomb"):
        extract_v1_checkpoints(archive, into)
    assert not list(into.iterdir())
    many = tmp_path / "many.zip"
    many.write_bytes(_zip({f"{i}.txt": b"x" for i in range(100)}))
    with pytest.raises(ConversionError, match="100 members"):
        extract_v1_checkpoints(many, into)


def test_zip_members_never_land_outside_the_directory_given(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip({"../../100-G.ckpt": b"g", "/abs/100-D.ckpt": b"d", "x/50-G.ckpt": b"old"}))
    into = tmp_path / "deep" / "into"
    into.mkdir(parents=True)
    generator, discriminator = extract_v1_checkpoints(archive, into)
    assert (generator, discriminator) == (into / "100-G.ckpt", into / "100-D.ckpt")  # the highest step
    assert generator.read_bytes() == b"g" and discriminator.read_bytes() == b"d"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["100-D.ckpt", "100-G.ckpt", "a.zip", "deep", "into"]
