"""Run and model directories written before the package took its present shape (by the code of commit 39e16e7,
`tests/fixtures/legacy/`) open with today's code and give the same numbers: each family's model directory
exports signatures whose outputs equal the ones that code's export gave on the same inputs, and a StarGAN v1 run
directory (its config in the earlier `v1:` layout) resumes to the weights of that code's uninterrupted run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from stargan_keras import families, train
from stargan_keras.serving.export import export_saved_model

LEGACY = Path(__file__).resolve().parent / "fixtures" / "legacy"
V1_RUN_FLAGS = ["--model", "v1", "--image-size", "16", "--g-conv-dim", "4", "--d-conv-dim", "4", "--g-repeat-num",
                "1", "--d-repeat-num", "2", "--batch-size", "2", "--save-every", "2", "--sample-every", "100",
                "--shapes-train-per-domain", "10", "--shapes-val-per-domain", "2", "--n-critic", "2",
                "--lr-decay", "none"]


@pytest.fixture(scope="module")
def pinned():
    with np.load(LEGACY / "signature_outputs.npz", allow_pickle=True) as data:  # written by this project's tests
        return {key: data[key] for key in data.files}


@pytest.mark.slow
@pytest.mark.parametrize("family", ["v2", "v1"])
def test_a_legacy_model_directory_exports_the_same_outputs(family, pinned, tmp_path):
    translator = families.load(LEGACY / f"{family}_model")
    assert translator.config.FAMILY == family
    export = export_saved_model(translator, tmp_path / "export", version=1, mean_style_samples=50)
    loaded = tf.saved_model.load(str(export))
    table = families.get(family).signatures
    assert {key.split("/")[1] for key in pinned if key.startswith(f"{family}/")} == set(table.names)
    for name in table.names:
        inputs = {key.rsplit("/", 1)[1]: value for key, value in pinned.items()
                  if key.startswith(f"{family}/{name}/in/")}
        outputs = loaded.signatures[name](**{key: tf.constant(value) for key, value in inputs.items()})
        expected = {key.rsplit("/", 1)[1]: value for key, value in pinned.items()
                    if key.startswith(f"{family}/{name}/out/")}
        assert set(outputs) == set(expected), name
        for key, value in expected.items():
            np.testing.assert_array_equal(outputs[key].numpy(), value, err_msg=f"{family} {name} {key}")


@pytest.mark.slow
def test_a_legacy_v1_run_directory_resumes_exactly(tmp_path):
    run = tmp_path / "v1_run"
    shutil.copytree(LEGACY / "v1_run", run)
    assert train.main([*V1_RUN_FLAGS, "--total-iters", "4", "--run-dir", str(run)]) == 0
    resumed = tf.train.load_checkpoint(str(run / "checkpoints" / "ckpt-4"))
    uninterrupted = tf.train.load_checkpoint(str(LEGACY / "v1_run_step4" / "ckpt-4"))
    names = [name for name in uninterrupted.get_variable_to_shape_map() if name.startswith("networks/")]
    assert names and sorted(names) == sorted(n for n in resumed.get_variable_to_shape_map() if n.startswith("networks/"))
    for name in names:
        np.testing.assert_array_equal(resumed.get_tensor(name), uninterrupted.get_tensor(name), err_msg=name)
