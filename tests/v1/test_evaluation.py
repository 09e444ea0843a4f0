"""`python -m stargan_keras.evaluate` on a StarGAN v1 run: target-attribute accuracy of translations (recomputed
here from the classifier's logits and targets built by hand) and FID; the classifier's label decisions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from stargan_keras import evaluate
from stargan_keras.core.run_dir import RunDir
from stargan_keras.families import load_networks
from stargan_keras.metrics import domain_classifier as dc
from stargan_keras.v1.data import adopt_labels, load_labelled, make_eval_dataset, make_train_dataset
from stargan_keras.v1.evaluation import LabelClassifier, dataset_parts, load_or_train_label_classifier
from stargan_keras.core.reports import REPORT_KEYS, SHARED_SETTINGS
from tests.harness.fid import small_inception
from tests.harness.v1 import make_tiny_v1_config

CLASSIFIER_STEPS = "30"


def _info(multi_label):
    return dc.ClassifierInfo(version=dc.VERSION, dataset="d", domain_names=list("abcde"), train_counts=[1],
                             img_size=8, input_size=8, steps=1, multi_label=multi_label)


def test_label_decisions():
    """Attributes: logit > 0, except one on per exclusive group (its largest logit); classes: a one-hot argmax."""
    logits = np.array([[2.0, 3.0, -1.0, 0.5, -0.2], [-3.0, -2.0, -4.0, -0.1, 4.0]], np.float32)
    model = lambda x, training=False: tf.constant(logits)  # noqa: E731 - a stand-in for the CNN
    images = np.zeros((2, 8, 8, 3), np.float32)
    attributes = LabelClassifier(model, _info(True), exclusive=[0, 1, 2]).predict(images)
    np.testing.assert_array_equal(attributes, [[0, 1, 0, 1, 0], [0, 1, 0, 0, 1]])
    free = LabelClassifier(model, _info(True), exclusive=[]).predict(images)
    np.testing.assert_array_equal(free, logits > 0)
    classes = LabelClassifier(model, _info(False), exclusive=[]).predict(images)
    np.testing.assert_array_equal(classes, [[0, 1, 0, 0, 0], [0, 0, 0, 0, 1]])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A v1 run directory after one training step on tiny shapes (no subprocess, no long training)."""
    from stargan_keras.v1.trainer import StarGANv1

    root = tmp_path_factory.mktemp("v1eval") / "run"
    config = make_tiny_v1_config(dataset="shapes", image_size=16, d_repeat_num=2, c_dim=5, selected_attrs=[],
                                 shapes_train_per_domain=12, shapes_val_per_domain=3, batch_size=4, run_dir=str(root))
    data = load_labelled(config)
    config = adopt_labels(config, data, {}).validate()
    model = StarGANv1(config)
    model.compile()
    model.distributed_train_step(next(iter(make_train_dataset(config, data))))
    run = RunDir(root)
    run.root.mkdir(parents=True)
    config.save(run.config)
    tf.train.CheckpointManager(model.checkpoint(), str(run.checkpoints), max_to_keep=1).save(checkpoint_number=1)
    return run


def _by_hand_targets(c_org):
    """Shapes: target k < 3 sets shape k and clears the other two; k = 3, 4 flips red, large."""
    targets = []
    for k in range(5):
        target = c_org.copy()
        if k < 3:
            target[:, :3] = np.eye(3)[k]
        else:
            target[:, k] = 1 - target[:, k]
        targets.append(target)
    return targets


@pytest.mark.slow
def test_accuracy_matches_a_direct_computation(tiny_run):
    assert evaluate.main(["--run-dir", str(tiny_run.root), "--metrics", "accuracy", "--classifier-steps",
                          CLASSIFIER_STEPS, "--quiet"]) == 0
    report = json.loads((tiny_run.eval / "metrics_v1_1.json").read_text())
    metrics = report["metrics"]
    assert report["step"] == 1 and report["model_family"] == "v1" and report["num_test_images"] == {"shapes": 9}

    config, networks = load_networks(tiny_run.root)
    data = load_labelled(config)
    part = dataset_parts(config, data)[0]
    classifier = load_or_train_label_classifier(tiny_run.eval, config, data, part, int(CLASSIFIER_STEPS),
                                                progress=False)  # the cached one
    x, c_org = (np.concatenate(parts) for parts in zip(*[(a.numpy(), b.numpy())
                                                          for a, b in make_eval_dataset(config, data)]))
    names = config.model.selected_attrs
    for k, target in enumerate(_by_hand_targets(c_org)):
        fake = np.asarray(networks.generator(x, target))
        logits = np.asarray(classifier.model(dc.resize_for_classifier(tf.constant(fake), 16), training=False))
        right = (np.argmax(logits[:, :3], axis=1) == k) if k < 3 else ((logits[:, k] > 0) == (target[:, k] == 1))
        assert metrics[f"accuracy/{names[k]}"] == pytest.approx(np.mean(right)), names[k]
        assert 0.0 <= metrics[f"accuracy_all/{names[k]}"] <= metrics[f"accuracy/{names[k]}"]
    assert metrics["accuracy/mean"] == pytest.approx(np.mean([metrics[f"accuracy/{n}"] for n in names]))
    assert 0.0 <= report["classifiers"]["shapes"]["accuracy"] <= 1.0
    assert set(REPORT_KEYS) <= set(report) and set(SHARED_SETTINGS) <= set(report["settings"])
    assert any((tiny_run.logs / "eval").iterdir())


@pytest.mark.slow
def test_fid_report_of_translations_with_a_stand_in_fid_network(tiny_run, tmp_path, capsys, monkeypatch):
    """v1's FID values with random networks; the FID network is a small stand-in for the untrained InceptionV3
    (what is checked is the report, not the network's numbers)."""
    from stargan_keras.metrics import fid

    monkeypatch.setattr(fid, "_keras_inception", small_inception)
    assert evaluate.main(["--run-dir", str(tiny_run.root), "--metrics", "fid,lpips", "--inception", "keras",
                          "--untrained-metric-networks", "--max-images-per-domain", "4", "--out", str(tmp_path),
                          "--quiet"]) == 0
    assert "LPIPS is skipped" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "metrics_v1_1.json").read_text())["metrics"]
    names = ["circle", "square", "triangle", "red", "large"]
    assert set(metrics) == {f"FID/{name}" for name in [*names, "mean"]}
    assert all(np.isfinite(value) and value >= 0 for value in metrics.values())
