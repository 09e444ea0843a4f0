"""Model directories: written atomically, replacing only what the writer owns."""

import hashlib

import numpy as np
import pytest

from stargan_keras.core.run_dir import CONFIG_FILE

from stargan_keras.core.model_dir import save_networks, weights_file
from stargan_keras.families import load_networks
from stargan_keras.core.config import ConfigError
from stargan_keras.v2.networks import build_networks
from stargan_keras.core.safe_files import MARKER_FILE


def checksums(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tiny_config):
    config = tiny_config(img_size=16, base_dim=4, max_conv_dim=8, mapping_hidden_dim=8)
    return config, build_networks(config.model, with_discriminator=False)


def test_a_directory_of_other_files_is_left_intact(tiny, tmp_path):
    config, networks = tiny
    target = tmp_path / "thesis"
    (target / "sub").mkdir(parents=True)
    (target / "thesis.txt").write_text("three years of work")
    (target / "sub" / "data.csv").write_text("a,b\n1,2\n")
    before = checksums(target)
    with pytest.raises(ConfigError, match=r"thesis is not empty \(sub, thesis.txt\).*--overwrite"):
        save_networks(target, config, networks)
    assert checksums(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis"]  # no staging directory left behind


def test_a_file_is_refused(tiny, tmp_path):
    config, networks = tiny
    target = tmp_path / "model"
    target.write_text("not a directory")
    with pytest.raises(ConfigError, match="is not a directory"):
        save_networks(target, config, networks)
    assert target.read_text() == "not a directory"


def test_own_model_directory_and_empty_directory_are_replaced(tiny, tmp_path):
    config, networks = tiny
    (tmp_path / "empty").mkdir()
    for target in (tmp_path / "empty", tmp_path / "new" / "model"):
        written = save_networks(target, config, networks)
        assert sorted(p.name for p in written.iterdir()) == sorted(
            [CONFIG_FILE, MARKER_FILE] + [weights_file(name) for name, _ in networks.items()])
    first = checksums(tmp_path / "empty")
    networks.generator.set_weights([w + 1.0 for w in networks.generator.get_weights()])
    save_networks(tmp_path / "empty", config, networks)  # a model directory: replaced as a whole
    assert checksums(tmp_path / "empty")[weights_file("generator")] != first[weights_file("generator")]
    _, loaded = load_networks(tmp_path / "empty")
    for got, want in zip(loaded.generator.get_weights(), networks.generator.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_overwrite_never_replaces_a_foreign_directory(tiny, tmp_path):
    config, networks = tiny
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="not a model directory.*refused even with --overwrite"):
        save_networks(tmp_path / "old", config, networks, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"] and (tmp_path / "old" / "notes.txt").read_text() == "x"


def test_current_directory_as_output(tiny, tmp_path, monkeypatch):
    config, networks = tiny
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text("mine")
    monkeypatch.chdir(work)
    with pytest.raises(ConfigError, match="is not empty"):
        save_networks(".", config, networks)
    assert (work / "keep.txt").read_text() == "mine"
