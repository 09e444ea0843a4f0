"""The evaluation protocol (tasks, outputs per source, JSON and TensorBoard) and domain accuracy."""

import itertools
import json
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from stargan_keras import evaluate as ev
from stargan_keras.v2 import evaluation
from stargan_keras.core.model_dir import save_networks
from stargan_keras.core.run_dir import training_checkpoint
from stargan_keras.data.shapes import DOMAINS, generate_shapes, shapes_domain_images
from stargan_keras.v2.inference import Translator
from stargan_keras.metrics import LPIPS
from stargan_keras.metrics.networks import MetricNetworks
from stargan_keras.metrics.domain_classifier import (INFO_FILE, WEIGHTS_FILE, degradations,
                                                     load_or_train_classifier)
from stargan_keras.metrics.fid import inception_from_args
from stargan_keras.v2.networks import build_networks
from stargan_keras.core.reports import REPORT_KEYS, SHARED_SETTINGS
from tests.harness.fid import (build_fid_extractors_once, needs_torch, save_random_torch_inception,
                               small_inception)

IMG = 32
NUM_VAL = 2  # val images per domain of the folder dataset
# One value computed two ways (G's content encoding reused or not, a seed run alone or among others, the fid command
# on the saved PNGs): float32 rounding allowed.
SAME_RTOL = 1e-6  # measured 0.0 for all three


@pytest.fixture(scope="module")
def folder_config(tiny_config, folder_dataset):
    """Tiny networks for the two domains of the folder dataset."""
    return tiny_config(img_size=IMG, num_domains=2, domain_names=list(DOMAINS[:2]), dataset=str(folder_dataset))


@pytest.fixture(scope="module")
def folder_dataset(tmp_path_factory):
    """Two domains (circle, square) of shapes saved as PNG files in the authors' train/val layout."""
    root = tmp_path_factory.mktemp("folder_dataset")
    for split, count in (("train", 6), ("val", NUM_VAL)):
        data = generate_shapes(count, IMG, seed=3, split=split)
        for domain in (0, 1):
            folder = root / split / DOMAINS[domain]
            folder.mkdir(parents=True)
            for i, image in enumerate(data.images[data.labels == domain]):
                Image.fromarray(image).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, folder_config):
    return save_networks(tmp_path_factory.mktemp("models") / "tiny", folder_config,
                         build_networks(folder_config.model))


def test_tasks_are_every_ordered_pair_of_distinct_domains():
    names = ["cat", "dog", "wild"]
    tasks = evaluation.make_tasks(names)
    assert {(t.source, t.target) for t in tasks} == set(itertools.permutations(range(3), 2))
    assert len(tasks) == 6
    assert [t.name for t in tasks[:2]] == ["dog2cat", "wild2cat"]  # target-major, like the authors
    assert all(t.name == f"{names[t.source]}2{names[t.target]}" for t in tasks)


def test_references_are_distinct_per_source_when_there_are_enough():
    rng = np.random.default_rng(0)
    picks = evaluation.choose_references(rng, num_sources=7, num_references=12, num_outputs=10)
    assert picks.shape == (7, 10)
    assert all(len(set(row)) == 10 for row in picks) and picks.min() >= 0 and picks.max() < 12
    few = evaluation.choose_references(rng, num_sources=3, num_references=4, num_outputs=10)
    assert few.shape == (3, 10) and few.max() < 4


class _StubGenerator:
    """G's interface around `paint(x, s)`, its content encoding x itself."""

    def __init__(self, paint):
        self.paint = paint

    def __call__(self, x, s, masks=None):
        return self.paint(x, s)

    def encode_content(self, x, masks=None):
        return x

    def decode_content(self, content, s, masks=None):
        return self.paint(content, s)


def _stub_translator(config, prototypes, generator=None):
    """A 'generator' that paints the prototype of the domain its style encodes (styles are one-hot domains)."""
    style_dim = config.model.style_dim
    protos = tf.constant(prototypes)
    networks = SimpleNamespace(
        mapping_network=lambda z, y: tf.one_hot(y, style_dim),
        style_encoder=lambda x, y: tf.one_hot(y, style_dim),
        generator=_StubGenerator(generator or (lambda x, s: tf.gather(protos, tf.argmax(s, axis=-1)))),
        face_masks=lambda x: None)
    return Translator(config, networks)


@pytest.fixture(scope="module")
def shapes_classifier(tmp_path_factory, tiny_config):
    config = tiny_config(img_size=IMG, num_domains=len(DOMAINS), domain_names=list(DOMAINS), dataset="shapes",
                         shapes_train_per_domain=120, shapes_val_per_domain=4)
    domain_images = shapes_domain_images(IMG, 120, 4, seed=0)
    directory = tmp_path_factory.mktemp("classifier")
    classifier = load_or_train_classifier(directory, config, domain_images, steps=120, progress=False)
    return config, domain_images, classifier, directory


@pytest.mark.slow
def test_domain_classifier_learns_shapes_and_is_cached(shapes_classifier):
    config, domain_images, classifier, directory = shapes_classifier
    assert classifier.info.val_accuracy >= 0.8
    assert (directory / WEIGHTS_FILE).is_file() and (directory / INFO_FILE).is_file()
    cached = load_or_train_classifier(directory, config, domain_images, steps=120, progress=False)
    images = generate_shapes(4, IMG, seed=9, split="val").images / 127.5 - 1.0
    np.testing.assert_array_equal(cached.predict(images), classifier.predict(images))
    other_steps = classifier.info.matches(
        type(classifier.info)(**{**vars(classifier.info), "steps": classifier.info.steps + 1}))
    assert not other_steps


@pytest.mark.slow
def test_domain_classifier_judges_the_shape_of_blurred_noisy_recoloured_images(shapes_classifier):
    """Degraded real images (what a soft, noisy translation looks like) are still told apart by their outline."""
    _, _, classifier, _ = shapes_classifier
    val = generate_shapes(30, IMG, seed=5, split="val")
    degraded = degradations(seed=11)(tf.constant(val.images / 127.5 - 1.0, tf.float32), training=True)
    assert float(tf.reduce_max(tf.abs(degraded - (val.images / 127.5 - 1.0)))) > 0.2  # really degraded
    for domain in range(len(DOMAINS)):
        assert classifier.accuracy(degraded.numpy()[val.labels == domain], domain) >= 0.8, DOMAINS[domain]


@pytest.mark.slow
def test_accuracy_and_lpips_score_what_the_generator_does(shapes_classifier):
    """A generator that paints the target domain scores its classifier's accuracy on those paintings and LPIPS 0;
    the identity scores the share of sources the classifier already puts in the target domain."""
    config, domain_images, classifier, _ = shapes_classifier
    train = domain_images.splits["train"]
    prototypes = []
    for domain, source in enumerate(train):  # per domain, an image the classifier gets right
        images = source.array / 127.5 - 1.0
        prototypes.append(images[np.argmax(classifier.predict(images) == domain)].astype(np.float32))
    networks = MetricNetworks(lpips=LPIPS(), classifier=classifier)
    painter = _stub_translator(config, np.stack(prototypes))
    for mode in evaluation.MODES:
        painted = evaluation.evaluate(painter, domain_images, mode, networks, num_outputs=3,
                                      progress=False)["metrics"]
        for task in evaluation.make_tasks(DOMAINS):
            assert painted[evaluation.metric_key("accuracy", mode, task.name)] == 1.0
            # LPIPS among identical paintings: float32 rounding allowed; measured 0.0
            assert painted[evaluation.metric_key("lpips", mode, task.name)] == pytest.approx(0.0, abs=1e-6)

    identity = _stub_translator(config, np.stack(prototypes), generator=lambda x, s: tf.identity(x))
    results = evaluation.evaluate(identity, domain_images, "latent", MetricNetworks(classifier=classifier),
                                  num_outputs=2, progress=False)["metrics"]
    for task in evaluation.make_tasks(DOMAINS):
        sources = domain_images.splits["val"][task.source].array / 127.5 - 1.0
        expected = np.mean(classifier.predict(sources) == task.target)
        assert results[evaluation.metric_key("accuracy", "latent", task.name)] == pytest.approx(expected)


def test_reusing_g_content_encoding_leaves_fid_and_lpips_unchanged(folder_config, model_dir, monkeypatch):
    """The protocol with G's content encoding once per source, and with all of G per output (the authors'
    way): the same FID and LPIPS of every task in both modes, within float rounding. The FID extractor's
    network is a small stand-in: the check is about the translations that reach it, and InceptionV3 would be
    most of the test's cost."""
    from stargan_keras.data import load_dataset
    from stargan_keras.metrics import FidFeatureExtractor, fid

    monkeypatch.setattr(fid, "_keras_inception", small_inception)
    translator = Translator.from_directory(model_dir)
    domain_images = load_dataset(folder_config, progress=False)
    networks = MetricNetworks(fid=FidFeatureExtractor("keras", weights=None, resize="tf"), lpips=LPIPS())
    real = evaluation.RealFeatures(evaluation.EvalData(folder_config, domain_images), networks.fid, None, None,
                                   progress=False)
    for mode in evaluation.MODES:
        reused, recomputed = (evaluation.evaluate(translator, domain_images, mode, networks, num_outputs=3, seed=1,
                                                  real_features=real, progress=False, reuse_content=reuse)["metrics"]
                              for reuse in (True, False))
        assert len(reused) == 6 and set(reused) == set(recomputed)  # FID and LPIPS of 2 tasks and their mean
        for key, value in recomputed.items():
            assert reused[key] == pytest.approx(value, rel=SAME_RTOL), key
        # the outputs differ per style: LPIPS of identical images is exactly 0, and random LPIPS weights give
        # distances of either sign and any size (measured 4.4e-5 to 1.7e-3 in magnitude over unseeded runs)
        assert recomputed[evaluation.metric_key("lpips", mode, "mean")] != 0.0


def _run(argv, capsys):
    code = ev.main([*argv, "--quiet"])
    return code, capsys.readouterr()


@pytest.mark.slow
def test_protocol_end_to_end_with_accuracy(model_dir, capsys):
    code, _ = _run(["--checkpoint", str(model_dir), "--mode", "both", "--metrics", "accuracy",
                    "--classifier-steps", "20"], capsys)
    assert code == 0
    tasks = ["square2circle", "circle2square"]
    for mode in evaluation.MODES:
        report = json.loads((model_dir / "eval" / f"metrics_{mode}.json").read_text())
        assert report["tasks"] == tasks and report["mode"] == mode and report["step"] is None
        assert report["num_generated"] == {task: NUM_VAL * 10 for task in tasks}
        assert report["num_source_images"] == {task: NUM_VAL for task in tasks}
        keys = {f"accuracy_{mode}/{name}" for name in [*tasks, "mean"]}
        assert set(report["metrics"]) == keys
        values = [report["metrics"][f"accuracy_{mode}/{task}"] for task in tasks]
        assert all(0.0 <= v <= 1.0 for v in values)
        assert report["metrics"][f"accuracy_{mode}/mean"] == pytest.approx(np.mean(values))
        assert 0.0 <= report["classifiers"]["domains"]["accuracy"] <= 1.0
        assert set(REPORT_KEYS) <= set(report) and set(SHARED_SETTINGS) <= set(report["settings"])
    assert (model_dir / "eval" / WEIGHTS_FILE).is_file()
    assert not (model_dir / "eval" / "images").exists()  # nothing written per image unless asked


@pytest.mark.slow
def test_fid_and_lpips_with_untrained_networks(model_dir, tmp_path, capsys, monkeypatch):
    """The report of both metrics with random networks; the FID network is a small stand-in for the untrained
    InceptionV3 (what is checked is the report, not the network's numbers)."""
    from stargan_keras.metrics import fid

    monkeypatch.setattr(fid, "_torchvision_inception", small_inception)
    out = tmp_path / "out"
    code, captured = _run(["--checkpoint", str(model_dir), "--mode", "reference", "--metrics", "fid,lpips",
                           "--untrained-metric-networks", "--num-outputs", "3", "--out", str(out),
                           "--save-images"], capsys)
    assert code == 0, captured.err
    report = json.loads((out / "metrics_reference.json").read_text())
    names = ["square2circle", "circle2square", "mean"]
    assert set(report["metrics"]) == {f"{m}_reference/{n}" for m in ("FID", "LPIPS") for n in names}
    assert all(np.isfinite(v) for v in report["metrics"].values())
    assert all(report["metrics"][f"FID_reference/{n}"] >= 0.0 for n in names)  # random LPIPS weights may be < 0
    assert report["num_generated"] == {"square2circle": NUM_VAL * 3, "circle2square": NUM_VAL * 3}
    assert len(list((out / "images" / "reference" / "square2circle").glob("*.png"))) == NUM_VAL * 3
    assert not list(out.glob("fid_real_*.npz"))  # random networks' features are never cached


@pytest.mark.slow
def test_run_directory_gets_step_json_and_tensorboard_scalars(folder_config, tmp_path, capsys):
    model = folder_config.model
    run = tmp_path / "run"
    run.mkdir()
    folder_config.save(run / "config.yaml")
    checkpoint = training_checkpoint(build_networks(model), build_networks(model, False, "ema_"),
                                     step=tf.Variable(7, dtype=tf.int64))
    tf.train.CheckpointManager(checkpoint, str(run / "checkpoints"), max_to_keep=1).save(checkpoint_number=7)

    code, captured = _run(["--checkpoint", str(run), "--mode", "latent", "--metrics", "accuracy",
                           "--num-outputs", "2", "--classifier-steps", "5"], capsys)
    assert code == 0, captured.err
    report = json.loads((run / "eval" / "metrics_latent_7.json").read_text())
    assert report["step"] == 7
    scalars = {}
    for path in (run / "logs" / "eval").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                scalars[value.tag] = (event.step, float(tf.make_ndarray(value.tensor)))
    assert scalars == {key: (7, pytest.approx(value)) for key, value in report["metrics"].items()}


@pytest.mark.parametrize("argv, words", [
    (["--metrics", "fid,is"], ["--metrics", "fid, lpips, accuracy"]),
    (["--metrics", "lpips"], ["--lpips-weights", "convert_weights"]),
    (["--metrics", "lpips", "--lpips-weights", "missing.weights.h5"], ["missing.weights.h5", "--lpips-weights"]),
    (["--metrics", "fid", "--inception-weights", "missing.h5"], ["missing.h5", "--inception-weights"]),
    (["--metrics", "fid", "--inception", "tf"], ["--inception tf", "torchvision, keras"]),
    (["--metrics", "accuracy", "--seeds", "0"], ["--seeds 0", "at least 1"]),
    (["--metrics", "accuracy", "--dataset", "shapes"], ["circle, square)", "circle, square, triangle", "--dataset"]),
])
def test_errors_name_the_flag_and_the_fix(model_dir, capsys, argv, words):
    code, captured = _run(["--checkpoint", str(model_dir), *argv], capsys)
    assert code == 2
    assert all(word in captured.err for word in words), captured.err


def test_lpips_on_a_model_smaller_than_alexnet_takes_is_a_user_error(tiny_config, folder_dataset, tmp_path, capsys):
    config = tiny_config(img_size=16, num_domains=2, domain_names=list(DOMAINS[:2]), dataset=str(folder_dataset))
    small = save_networks(tmp_path / "small", config, build_networks(config.model))
    code, captured = _run(["--checkpoint", str(small), "--metrics", "lpips", "--untrained-metric-networks"], capsys)
    assert code == 2
    assert "--metrics lpips" in captured.err and "31 px" in captured.err and "16 px" in captured.err, captured.err


@pytest.mark.parametrize("flags, expected", [
    ([], {"inception": "torchvision", "weights": "imagenet", "resize": "pil"}),
    (["--inception", "keras"], {"inception": "keras", "weights": "imagenet", "resize": "tf"}),
    (["--inception", "keras", "k.h5", "--fid-resize", "pil"],
     {"inception": "keras", "weights": "k.h5", "resize": "pil"}),
])
def test_fid_defaults_to_the_papers_network_and_pipeline(flags, expected):
    args = ev.build_parser().parse_args(["--checkpoint", "run", *flags])
    choice = inception_from_args(args)
    assert {**choice, "weights": str(choice["weights"])} == expected


def test_seed_summary_is_numpys_mean_and_std():
    per_seed = [{"FID_latent/a2b": 3.0, "FID_latent/mean": 2.0}, {"FID_latent/a2b": 5.5, "FID_latent/mean": 1.0},
                {"FID_latent/a2b": 4.0, "FID_latent/mean": 1.25}]
    mean, std = evaluation.summarize_seeds(per_seed)
    for key in per_seed[0]:
        values = [run[key] for run in per_seed]
        assert mean[key] == pytest.approx(np.mean(values)) and std[key] == pytest.approx(np.std(values))


@pytest.fixture(scope="module")
def random_torch_inception(tmp_path_factory):
    path = tmp_path_factory.mktemp("inception") / "inception_v3_random.pth"
    save_random_torch_inception(path)
    return path


@pytest.mark.slow
@needs_torch
def test_seeds_report_mean_and_std_with_the_default_torchvision_fid(model_dir, folder_dataset, random_torch_inception,
                                                                   tmp_path, capsys, monkeypatch):
    """--seeds 2 with the default FID network (random weights in a torchvision state dict): two per-seed results,
    their NumPy mean and std, real features computed once, seeds SEED and SEED+1; the saved PNGs scored by
    `python -m stargan_keras.fid` (the authors' file route) give the same FID as the in-memory protocol. The three
    commands share one FID network, built from the weights file by the first."""
    extractors = build_fid_extractors_once(monkeypatch)
    computed = []
    compute = evaluation.RealFeatures._compute
    monkeypatch.setattr(evaluation.RealFeatures, "_compute",
                        lambda self, domain, name: computed.append(name) or compute(self, domain, name))
    out, weights = tmp_path / "out", str(random_torch_inception)
    code, captured = _run(["--checkpoint", str(model_dir), "--mode", "latent", "--metrics", "fid", "--seeds", "2",
                           "--num-outputs", "2", "--inception-weights", weights, "--out", str(out),
                           "--save-images"], capsys)
    assert code == 0, captured.err
    report = json.loads((out / "metrics_latent.json").read_text())
    assert report["settings"]["inception"] == "torchvision" and report["settings"]["fid_resize"] == "pil"
    assert report["seeds"] == [0, 1] and [run["seed"] for run in report["per_seed"]] == [0, 1]
    assert sorted(computed) == ["circle", "square"]  # once per target domain, shared by the seeds
    keys = {f"FID_latent/{name}" for name in ("square2circle", "circle2square", "mean")}
    assert set(report["metrics"]) == set(report["metrics_std"]) == keys
    for key in keys:
        values = [run["metrics"][key] for run in report["per_seed"]]
        assert report["metrics"][key] == pytest.approx(np.mean(values), rel=1e-12)
        assert report["metrics_std"][key] == pytest.approx(np.std(values), rel=1e-12)
    first, second = (run["metrics"]["FID_latent/mean"] for run in report["per_seed"])
    assert first != second  # other latent codes
    assert "2 seed(s)" in captured.out and "±" in captured.out
    with capsys.disabled():
        print(f"\nFID_latent/mean per seed {first:.4f}, {second:.4f}; mean ± std "
              f"{report['metrics']['FID_latent/mean']:.4f} ± {report['metrics_std']['FID_latent/mean']:.4f}")

    code, captured = _run(["--checkpoint", str(model_dir), "--mode", "latent", "--metrics", "fid", "--seed", "1",
                           "--num-outputs", "2", "--inception-weights", weights, "--out", str(tmp_path / "one")],
                          capsys)
    assert code == 0, captured.err
    alone = json.loads((tmp_path / "one" / "metrics_latent.json").read_text())
    assert alone["metrics_std"] == {key: 0.0 for key in keys}
    for key in keys:
        assert alone["metrics"][key] == pytest.approx(report["per_seed"][1]["metrics"][key], rel=SAME_RTOL)

    from stargan_keras import fid as fid_command

    fakes = out / "images" / "seed_1" / "latent" / "square2circle"
    assert len(list(fakes.glob("*.png"))) == NUM_VAL * 2
    assert fid_command.main(["--paths", str(folder_dataset / "train" / "circle"), str(fakes), "--img-size", str(IMG),
                             "--inception-weights", weights, "--quiet"]) == 0
    assert len(extractors) == 1  # one network served the three commands
    printed = float(capsys.readouterr().out.strip().splitlines()[-1].removeprefix("FID: "))
    assert printed == pytest.approx(report["per_seed"][1]["metrics"]["FID_latent/square2circle"], rel=SAME_RTOL)
