"""Writers never remove or replace what they did not write: run and model directories carry a marker, a
directory of the user's is refused, links are never written through, and two results never share a path."""

import fcntl
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stargan_keras.core.run_dir import RunDir, directory_kind

from stargan_keras.core.model_dir import check_model_target, save_networks, weights_file
from stargan_keras.client import output_paths
from stargan_keras.v2.config import Config
from stargan_keras.core.config import ConfigError
from stargan_keras.core.errors import UserError
from stargan_keras.v2.networks import build_networks
from stargan_keras.core.safe_files import MARKER_FILE, MODEL_KIND, RUN_KIND, write_atomic

REPO = Path(__file__).resolve().parents[2]


def checksums(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


@pytest.fixture(scope="module")
def tiny(tiny_config):
    config = tiny_config(img_size=16, base_dim=4, max_conv_dim=8, mapping_hidden_dim=8)
    return config, build_networks(config.model, with_discriminator=False)


def test_a_run_directory_of_the_users_files_is_refused(tmp_path):
    root = tmp_path / "mine"
    (root / "samples").mkdir(parents=True)
    (root / "config.yaml").write_text("my own notes\n")
    before = checksums(root)
    with pytest.raises(ConfigError, match=r"--run-dir .*mine is not empty \(config.yaml, samples\).*new or empty"):
        with RunDir(root).lock():
            pass
    assert checksums(root) == before and sorted(os.listdir(root)) == ["config.yaml", "samples"]


def test_a_model_directory_is_not_a_run_directory(tiny, tmp_path):
    config, networks = tiny
    model = save_networks(tmp_path / "model", config, networks)
    before = checksums(model)
    with pytest.raises(ConfigError, match="is a model directory"):
        with RunDir(model).lock():
            pass
    assert checksums(model) == before


def test_runs_carry_a_marker_and_old_runs_still_open(tmp_path):
    with RunDir(tmp_path / "new").lock() as run:
        run.checkpoints.mkdir()
    assert directory_kind(tmp_path / "new") == RUN_KIND and (tmp_path / "new" / MARKER_FILE).is_file()
    old = tmp_path / "old"  # written before markers: config.yaml and checkpoints/
    (old / "checkpoints").mkdir(parents=True)
    Config().save(old / "config.yaml")
    with RunDir(old).lock():
        pass
    assert directory_kind(old) == RUN_KIND
    killed = tmp_path / "killed"  # a run killed between taking its lock and writing its marker
    killed.mkdir()
    (killed / ".lock").write_text("")
    (killed / f".{MARKER_FILE}.123.0123abcd.tmp").write_text("{")
    with RunDir(killed).lock():
        pass
    assert directory_kind(killed) == RUN_KIND


@pytest.mark.parametrize("link", [".lock", "config.yaml", "checkpoints"])
def test_links_in_a_run_directory_are_refused(tmp_path, link):
    victim = tmp_path / "victim"
    (victim / "checkpoints").mkdir(parents=True)
    (victim / "precious.txt").write_text("do not truncate")
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    Config().save(run / "config.yaml")
    target = victim / ("checkpoints" if link == "checkpoints" else "precious.txt")
    if (run / link).is_dir():
        (run / link).rmdir()
    else:
        (run / link).unlink(missing_ok=True)
    (run / link).symlink_to(target)
    before = checksums(victim)
    with pytest.raises(ConfigError, match=f"{link} is a symbolic link"):
        with RunDir(run).lock():
            pass
    assert checksums(victim) == before


def test_atomic_writes_never_follow_a_planted_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("theirs")
    (tmp_path / "config.yaml").symlink_to(victim)
    (tmp_path / "config.yaml.tmp").symlink_to(victim)  # the old fixed temporary name
    Config().save(tmp_path / "config.yaml")
    assert victim.read_text() == "theirs"
    assert not (tmp_path / "config.yaml").is_symlink() and "model" in (tmp_path / "config.yaml").read_text()
    write_atomic(tmp_path / "x", "y")
    assert (tmp_path / "x").read_text() == "y"


def test_convert_keeps_other_files_and_the_users_old_folder(tiny, tmp_path):
    config, networks = tiny
    model = save_networks(tmp_path / "model", config, networks)
    assert directory_kind(model) == MODEL_KIND
    (model / "README.txt").write_text("my notes")
    (model / "exports" / "1").mkdir(parents=True)
    (model / "exports" / "1" / "saved_model.pb").write_bytes(b"pb")
    sibling = tmp_path / ".model.old"
    sibling.mkdir()
    (sibling / "keep.txt").write_text("mine")
    before, sibling_before = checksums(model), checksums(sibling)
    with pytest.raises(ConfigError, match=r"also holds README.txt, exports/.*--overwrite to move the old directory"):
        save_networks(model, config, networks)
    assert checksums(model) == before
    save_networks(model, config, networks, overwrite=True)  # moved aside whole, not deleted
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("model.replaced-")]
    assert len(kept) == 1 and checksums(kept[0]) == before
    assert checksums(sibling) == sibling_before
    assert not (model / "README.txt").exists() and (model / weights_file("generator")).is_file()
    save_networks(model, config, networks)  # its own files only: replaced, nothing left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".model.old", "model", kept[0].name])


def test_overwrite_never_replaces_a_run_or_a_held_directory(tiny, tmp_path):
    config, networks = tiny
    run = RunDir(tmp_path / "run")
    with run.lock():
        run.checkpoints.mkdir()
        Config().save(run.config)
        before = checksums(run.root)
        with pytest.raises(ConfigError, match="in use by a running process"):
            check_model_target(run.root, overwrite=True)
        assert checksums(run.root) == before
    with pytest.raises(ConfigError, match="is a training run"):
        save_networks(run.root, config, networks, overwrite=True)
    held = save_networks(tmp_path / "model", config, networks)
    with open(held / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(ConfigError, match="in use by a running process"):
            save_networks(held, config, networks, overwrite=True)


def test_two_results_never_share_a_path(tmp_path):
    (tmp_path / "out").mkdir()
    inputs = [str(tmp_path / "a" / "cat.jpg"), str(tmp_path / "b" / "cat.png")]
    with pytest.raises(UserError, match=r"a/cat.jpg and .*b/cat.png would both be written to .*cat.png.*\{index\}"):
        output_paths(str(tmp_path / "out"), inputs)
    with pytest.raises(UserError, match="would both be written"):
        output_paths(str(tmp_path / "out" / "{stem}.png"), inputs)
    assert len(set(output_paths(str(tmp_path / "out" / "{stem}_{index}.png"), inputs))) == 2
    with pytest.raises(UserError, match="would replace the input"):
        output_paths(str(tmp_path / "in.png"), [str(tmp_path / "in.png")])


@pytest.mark.slow
def test_train_refuses_a_folder_of_the_users_files(tmp_path):
    root = tmp_path / "mine"
    (root / "samples").mkdir(parents=True)
    (root / "samples" / "holiday.png").write_bytes(b"\x89PNG...")
    (root / "config.yaml").write_text("my own notes\n")
    before = checksums(root)
    result = subprocess.run([sys.executable, "-m", "stargan_keras.train", "--run-dir", str(root), "--total-iters",
                             "1", "--img-size", "16", "--shapes-train-per-domain", "4", "--shapes-val-per-domain",
                             "2"], cwd=REPO, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")][0].count("--run-dir") >= 1
    assert checksums(root) == before and sorted(os.listdir(root)) == ["config.yaml", "samples"]
