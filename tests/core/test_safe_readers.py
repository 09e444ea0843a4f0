"""Readers check sizes before they allocate: a few kilobytes of torch file, weights file, zip or YAML, or a
numeric flag, is one `error:` line and exit 2, never gigabytes of memory or a traceback."""

import json
import os
import resource
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from stargan_keras.v2.config import Config

from stargan_keras.core.config import ConfigError
from stargan_keras.core.safe_files import ArchiveLimits, UnsafeFileError, check_weights_file, check_zip
from tests.harness.components import require

REPO = Path(__file__).resolve().parents[2]
ADDRESS_SPACE = 2 * 2**30  # the memory cap the small-file cases run under
BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))


def write_stride_zero_checkpoint(path: Path) -> Path:
    """A few hundred bytes whose one tensor is a 2**31-element view of a single float."""
    torch = require("torch")
    torch.save({"generator": {"from_rgb.weight": torch.zeros(1).expand(2**31)}, "mapping_network": {},
                "style_encoder": {}}, path)
    return path


def write_huge_weights(path: Path) -> Path:
    """Half a kilobyte of HDF5 declaring one 25000 x 20000 float32 dataset (2 GB once read)."""
    import h5py

    with h5py.File(path, "w") as handle:
        handle.create_dataset("layers/conv2d/vars/0", shape=(25000, 20000), dtype="f4", compression="gzip")
    return path


def write_zip_bomb(path: Path, size: int = 64 * 2**20) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("afhq/train/cat/flint_000001.jpg", bytes(size))
    return path


CASE_MARK = "--- case exit code "
# Runs each case's command as `python -m` does (runpy as __main__, the code of the SystemExit it ends with), one
# after the other in one process, so that TensorFlow is imported once for all of them.
RUN_CASES = f"""
import json, runpy, sys
for argv in json.loads(sys.argv[1]):
    sys.argv = list(argv)
    try:
        runpy.run_module(argv[0], run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exit:
        code = 0 if exit.code is None else exit.code if isinstance(exit.code, int) else 1
    print("{CASE_MARK}" + str(code), file=sys.stderr, flush=True)
"""


def run_capped(cases, cwd=REPO) -> list[tuple[int, str]]:
    """Commands (module and arguments) in one process under a 2 GiB address-space limit, which the ones run
    first only make tighter for the later ones: (exit code, stderr) of each."""
    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", RUN_CASES, json.dumps([list(map(str, args)) for args in cases])],
                            cwd=cwd, env=env, capture_output=True, text=True, timeout=600, preexec_fn=cap)
    assert result.returncode == 0 and result.stderr.count(CASE_MARK) == len(cases), result.stderr[-3000:]
    outputs, rest = [], result.stderr
    for _ in cases:  # each case's stderr, then the mark and its exit code on one line
        err, _, rest = rest.partition(CASE_MARK)
        code, _, rest = rest.partition("\n")
        outputs.append((int(code), err))
    return outputs


def assert_one_error_line(code, stderr, expected):
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code == 2 and "Traceback" not in stderr, stderr[-3000:]
    assert len(errors) == 1 and expected in errors[0], stderr[-3000:]


def directory_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


# -- fast, in process -------------------------------------------------------------------------------------------
def test_a_stride_zero_view_is_refused_before_conversion(tmp_path):
    from stargan_keras.core.torch_io import TorchFileError, load_torch_file

    path = write_stride_zero_checkpoint(tmp_path / "tiny.ckpt")
    assert path.stat().st_size < 4096
    with pytest.raises(TorchFileError, match="stride-0"):
        load_torch_file(path)


def test_many_views_of_one_storage_are_refused(tmp_path):
    from stargan_keras.core.torch_io import TorchFileError, load_torch_file

    torch = require("torch")
    shared = torch.zeros(2**18)
    torch.save({f"w{i}": shared[: 2**18 - i] for i in range(64)}, tmp_path / "shared.ckpt")
    with pytest.raises(TorchFileError, match="more than the file holds"):
        load_torch_file(tmp_path / "shared.ckpt")


def test_a_weights_file_declaring_a_huge_dataset_is_refused(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.save_weights(tmp_path / "ok.weights.h5")
    check_weights_file(tmp_path / "ok.weights.h5", model, "model file")
    path = write_huge_weights(tmp_path / "huge.weights.h5")
    assert path.stat().st_size < 64 * 1024
    with pytest.raises(UnsafeFileError, match=r"shape \(25000, 20000\), which no variable"):
        check_weights_file(path, model, "model file")


def test_zip_limits_count_sizes_and_ratio(tmp_path):
    bomb = write_zip_bomb(tmp_path / "afhq.zip", size=8 * 2**20)
    with pytest.raises(UnsafeFileError, match="times larger than it is packed.*STARGAN_KERAS_ARCHIVE_LIMIT_SCALE"):
        check_zip(bomb)
    check_zip(bomb, ArchiveLimits().scaled(100))  # a raised limit lets it through
    with zipfile.ZipFile(tmp_path / "many.zip", "w") as archive:
        for i in range(5):
            archive.writestr(f"f{i}.jpg", os.urandom(100))
    with pytest.raises(UnsafeFileError, match="5 members"):
        check_zip(tmp_path / "many.zip", ArchiveLimits(max_members=4))
    with pytest.raises(UnsafeFileError, match="unpacks to"):
        check_zip(tmp_path / "many.zip", ArchiveLimits(max_total_bytes=400))
    check_zip(tmp_path / "many.zip")


@pytest.mark.parametrize("content, message", [
    (BILLION_LAUGHS, "aliases"),
    ("model: " + "[" * 2000 + "]" * 2000 + "\n", "nested more than"),
    ("model: 5\n", "model must be a section"),
    (b"model:\n  domain_names: [caf\xe9]\n", "not UTF-8"),
    ("x" * (2**20 + 1), "more than the 1048576"),
])
def test_hostile_yaml_is_one_config_error(tmp_path, content, message):
    path = tmp_path / "config.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ConfigError, match=message):
        Config.read(path)


def test_special_files_are_not_read_as_configs(tmp_path):
    for path in ("/dev/zero", tmp_path):
        with pytest.raises(ConfigError, match="not a regular file"):
            Config.read(path)


def test_flags_beyond_the_machine_memory_are_refused():
    with pytest.raises(UnsafeFileError, match="--batch-size 100000000"):
        Config().replace(batch_size=100_000_000).validate()
    with pytest.raises(UnsafeFileError, match="--shapes-train-per-domain 1000000000"):
        Config().replace(shapes_train_per_domain=1_000_000_000, img_size=64).validate()
    Config().replace(batch_size=64).validate()


def test_a_garbled_binary_index_is_rewritten_from_the_checkpoints(tmp_path):
    import tensorflow as tf

    from stargan_keras.core.run_dir import RunDir

    run = RunDir(tmp_path / "run")
    value = tf.Variable(0.0)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(value=value), str(run.checkpoints), max_to_keep=3)
    for step in (2, 4, 6):
        value.assign(float(step))
        manager.save(checkpoint_number=step)
    (run.checkpoints / "checkpoint").write_bytes(b"\xff\xfe\x80 model_checkpoint_path \x00\x9c")
    messages = []
    run.repair_index(log=messages.append)
    assert len(messages) == 1 and "ckpt-2, ckpt-4, ckpt-6" in messages[0]
    reopened = tf.train.CheckpointManager(tf.train.Checkpoint(value=value), str(run.checkpoints), max_to_keep=3)
    assert reopened.latest_checkpoint.endswith("ckpt-6") and len(reopened.checkpoints) == 3
    before = (run.checkpoints / "checkpoint").read_bytes()
    run.repair_index(log=messages.append)  # an intact index is left alone
    assert (run.checkpoints / "checkpoint").read_bytes() == before and len(messages) == 1


# -- the commands, under a 2 GiB address-space limit ---------------------------------------------------------------
@pytest.mark.slow
def test_small_files_and_large_flags_exit_2_under_a_memory_cap(tmp_path):
    checkpoint = write_stride_zero_checkpoint(tmp_path / "tiny.ckpt")
    model = tmp_path / "model"
    model.mkdir()
    Config().replace(img_size=32, base_dim=8, max_conv_dim=32, w_hpf=0.0).save(model / "config.yaml")
    write_huge_weights(model / "generator.weights.h5")
    laughs_model = tmp_path / "laughs_model"
    laughs_model.mkdir()
    (laughs_model / "config.yaml").write_text(BILLION_LAUGHS)
    (laughs_model / "generator.weights.h5").write_bytes(b"")
    (tmp_path / "laughs.yaml").write_text(BILLION_LAUGHS)
    data = tmp_path / "data"
    write_zip_bomb(data / "downloads" / "manual" / "afhq.zip")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    train = ("stargan_keras.train", "--total-iters", "1", "--img-size", "16", "--run-dir", tmp_path / "run")
    cases = [
        (("stargan_keras.convert", "--pytorch-checkpoint", checkpoint, "--config", "afhq", "--output",
          tmp_path / "out"), "stride-0"),
        (("stargan_keras.export", "--checkpoint", model, "--output", tmp_path / "exports"), "(25000, 20000)"),
        (("stargan_keras.export", "--checkpoint", laughs_model, "--output", tmp_path / "exports"), "aliases"),
        ((*train, "--config", tmp_path / "laughs.yaml"), "aliases"),
        ((*train, "--config", "/dev/zero"), "not a regular file"),
        ((*train, "--batch-size", "100000000"), "--batch-size 100000000"),
        ((*train, "--shapes-train-per-domain", "1000000000"), "--shapes-train-per-domain 1000000000"),
        ((*train, "--dataset", "afhq", "--data-dir", data), "times larger than it is packed"),
    ]
    # The archive's case imports tensorflow_datasets, which no longer fits in the address space the other cases
    # leave behind (their thread pools and arenas): it runs in a capped process of its own.
    results = [*run_capped([args for args, _ in cases[:-1]]), *run_capped([cases[-1][0]])]
    for (code, stderr), (_, expected) in zip(results, cases, strict=True):
        assert_one_error_line(code, stderr, expected)
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert {p: after.get(p) for p in before} == before  # the user's files, byte for byte
    assert directory_bytes(tmp_path) - sum(map(len, before.values())) < 4 * 2**20
    assert not (tmp_path / "out").exists() and not (tmp_path / "exports").exists()
