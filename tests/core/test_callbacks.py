"""The training callbacks on their own: tiny fake models and networks, no training loop."""

import math
import os
import signal

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from stargan_keras.core import callbacks as cb
from stargan_keras.v2.figures import SampleGrids, sample_grids
from stargan_keras.core.imaging import to_uint8
from stargan_keras.v2.inference import Translator
from stargan_keras.v2.networks import build_networks


class FakeModel:
    """What the callbacks read from StarGANv2: a step counter and Keras' stop flag."""

    def __init__(self):
        self.step = tf.Variable(0, dtype=tf.int64)
        self.stop_training = False


def attach(callback, model=None):
    callback.set_model(model or FakeModel())
    return callback


def read_events(log_dir) -> dict:
    """{tag: {step: value}} from every TensorBoard event file under log_dir."""
    found = {}
    for path in tf.io.gfile.glob(os.path.join(str(log_dir), "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                found.setdefault(value.tag, {})[event.step] = tf.make_ndarray(value.tensor)
    return found


def test_non_finite_loss_names_step_and_term():
    callback = attach(cb.StopOnNonFiniteLoss())
    callback.model.step.assign(7)
    callback.on_train_batch_end(0, {"D/latent_real": np.float32(0.5), "G/ref_cyc": np.float32(0.1)})
    with pytest.raises(cb.NonFiniteLossError) as info:
        callback.on_train_batch_end(0, {"D/latent_real": np.float32(0.5), "G/latent_sty": np.float32(np.inf)})
    assert (info.value.step, info.value.term) == (7, "G/latent_sty")
    assert "step 7" in str(info.value) and "G/latent_sty" in str(info.value)


def test_periodic_checkpoint_saves_every_n_and_at_the_end(tmp_path):
    model = FakeModel()
    weight = tf.Variable(0.0)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(step=model.step, weight=weight), str(tmp_path),
                                         max_to_keep=2)
    saver = attach(cb.PeriodicCheckpoint(manager, every=2), model)
    saver.on_train_begin()
    for step in range(1, 6):
        model.step.assign(step)
        weight.assign(float(step) * 10)
        saver.on_train_batch_end(step - 1)
    assert [int(p.rsplit("-", 1)[1]) for p in manager.checkpoints] == [2, 4]
    saver.on_train_end()
    saver.on_train_end()  # a second end at the same step saves nothing new
    assert [int(p.rsplit("-", 1)[1]) for p in manager.checkpoints] == [4, 5]
    restored_step, restored_weight = tf.Variable(0, dtype=tf.int64), tf.Variable(0.0)
    tf.train.Checkpoint(step=restored_step, weight=restored_weight).restore(manager.latest_checkpoint)
    assert (int(restored_step.numpy()), float(restored_weight.numpy())) == (5, 50.0)


def test_signal_stops_after_the_step_and_restores_handlers():
    previous = signal.getsignal(signal.SIGTERM)
    callback = attach(cb.StopOnSignal())
    callback.on_train_begin()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        assert callback.received == signal.SIGTERM
        assert not callback.model.stop_training  # the step in flight finishes first
        callback.on_train_batch_end(0)
        assert callback.model.stop_training
        with pytest.raises(KeyboardInterrupt):  # a second signal quits at once
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        callback.on_train_end()
    assert signal.getsignal(signal.SIGTERM) == previous


def test_tensorboard_scalars_every_n_steps(tmp_path):
    model = FakeModel()
    optimizers = {"generator": keras.optimizers.Adam(2e-4), "mapping_network": keras.optimizers.Adam(3e-6)}
    writer = tf.summary.create_file_writer(str(tmp_path))
    callback = attach(cb.TensorBoardScalars(writer, every=2, optimizers=optimizers), model)
    callback.on_train_begin()
    logs = {}
    for step in range(1, 5):
        model.step.assign(step)
        logs[step] = {"D/latent_real": np.float32(step / 10), "G/lambda_ds": np.float32(1 - step / 100)}
        callback.on_train_batch_end(step - 1, logs[step])
    callback.on_train_end()
    events = read_events(tmp_path)
    for tag in ("D/latent_real", "G/lambda_ds"):
        assert sorted(events[tag]) == [2, 4]
        for step in (2, 4):
            assert math.isclose(float(events[tag][step]), float(logs[step][tag]), rel_tol=1e-6)
    assert math.isclose(float(events["learning_rate/generator"][4]), 2e-4, rel_tol=1e-6)
    assert math.isclose(float(events["learning_rate/mapping_network"][4]), 3e-6, rel_tol=1e-6)
    assert float(events["speed/steps_per_second"][4]) > 0


@pytest.fixture(scope="module")
def tiny_networks(tiny_config):
    keras.utils.set_random_seed(3)
    config = tiny_config(img_size=16, num_domains=2, base_dim=4, max_conv_dim=16, mapping_hidden_dim=16,
                         style_dim=8, latent_dim=4)
    return config, build_networks(config.model, with_discriminator=False)


def _tile(grid, row, col, size=16, pad=2):
    top, left = pad + row * (size + pad), pad + col * (size + pad)
    return grid[top:top + size, left:left + size]


def test_sample_grids_rows(tiny_networks):
    config, nets = tiny_networks
    model = config.model
    rng = np.random.default_rng(0)
    n = 3
    batch = {"x_src": rng.uniform(-1, 1, (n, 16, 16, 3)).astype(np.float32), "y_src": np.array([0, 1, 0]),
             "x_ref": rng.uniform(-1, 1, (n, 16, 16, 3)).astype(np.float32), "y_ref": np.array([1, 0, 1])}
    z = tf.constant(rng.normal(size=(n, model.latent_dim)).astype(np.float32))
    s_avg = rng.normal(size=(model.num_domains, model.style_dim)).astype(np.float32)
    grids = sample_grids(Translator(config, nets, mean_styles=s_avg), batch, z)
    assert sorted(grids) == ["latent_psi0.5", "latent_psi0.7", "latent_psi1.0", "reference"]

    G, F, E = nets.generator, nets.mapping_network, nets.style_encoder
    output = G(batch["x_src"], E(batch["x_ref"], batch["y_ref"]))
    cycle = G(output, E(batch["x_src"], batch["y_src"]))
    expected_rows = [batch["x_src"], batch["x_ref"], np.asarray(output), np.asarray(cycle)]
    assert grids["reference"].shape == (2 + 4 * 18, 2 + n * 18, 3)
    for row, images in enumerate(expected_rows):
        for col in range(n):
            diff = np.abs(_tile(grids["reference"], row, col).astype(int) - to_uint8(images[col]).astype(int))
            assert diff.max() <= 1, (row, col)

    styles = [np.asarray(F(z, tf.fill([n], domain))) for domain in range(model.num_domains)]
    for psi in (0.5, 0.7, 1.0):
        grid = grids[f"latent_psi{psi}"]
        assert grid.shape == (2 + (1 + model.num_domains) * 18, 2 + n * 18, 3)
        for domain in range(model.num_domains):
            truncated = s_avg[domain] + psi * (styles[domain] - s_avg[domain])  # lerp(s_avg, s, psi)
            images = np.asarray(G(batch["x_src"], truncated))
            for col in range(n):
                diff = np.abs(_tile(grid, 1 + domain, col).astype(int) - to_uint8(images[col]).astype(int))
                assert diff.max() <= 1, (psi, domain, col)


def test_sample_callback_writes_jpegs_and_tensorboard_images(tiny_networks, tmp_path):
    config, nets = tiny_networks
    rng = np.random.default_rng(1)
    batch = {"x_src": rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32), "y_src": np.array([0, 1]),
             "x_ref": rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32), "y_ref": np.array([1, 0])}
    writer = tf.summary.create_file_writer(str(tmp_path / "logs"))
    model = FakeModel()
    callback = attach(SampleGrids(config, nets, batch, every=2, samples_dir=tmp_path / "samples", writer=writer),
                      model)
    for step in (1, 2, 3):
        model.step.assign(step)
        callback.on_train_batch_end(step - 1)
    callback.on_train_end()
    names = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert names == sorted(f"{step:06d}_{kind}.jpg" for step in (2, 3)
                           for kind in ("reference", "latent_psi0.5", "latent_psi0.7", "latent_psi1.0"))
    with Image.open(tmp_path / "samples" / "000002_reference.jpg") as image:
        assert image.format == "JPEG" and image.size == (2 + 2 * 18, 2 + 4 * 18)
    events = read_events(tmp_path / "logs")
    assert sorted(events["samples/reference"]) == [2, 3]


class TermsModel(FakeModel):
    """A trainer's `progress_terms`: a total and one health term from the latest logged values."""

    def progress_terms(self, logs):
        return [("G", logs["G/latent_adv"] + logs["G/latent_cyc"]), ("cyc", logs["G/latent_cyc"])]


def test_progress_bar_writes_one_short_line_per_log_interval_and_every_last_value(capsys):
    model = TermsModel()
    model.step.assign(4)  # a resumed run: 6 steps to go
    bar = attach(cb.ProgressBar(start_step=4, total_steps=10, every=3), model)
    bar.on_train_begin()
    many = {f"D/term_{i}": np.float32(i) for i in range(30)}  # every term of the run: too many for one line
    for step in range(5, 11):
        model.step.assign(step)
        bar.on_train_batch_end(0, {**many, "G/latent_adv": np.float32(step / 10), "G/latent_cyc": np.float32(0.5)})
    bar.on_train_end()
    out = capsys.readouterr().out
    assert "\r" not in out
    lines = out.splitlines()
    progress = [line for line in lines if line.startswith("step ")]
    assert [line.split()[1] for line in progress] == ["6/10", "9/10", "10/10"]  # every 3rd step and the last
    assert progress[-1].split("  ")[3:] == ["G 1.5", "cyc 0.5"] and "steps/s" in progress[-1]
    assert "ETA 0m00s" in progress[-1]
    summary = " ".join(lines[len(progress):])
    assert "last values:" in summary and "G/latent_adv 1 " in summary and "D/term_29 29" in summary
    assert max(map(len, lines)) <= cb.PROGRESS_WIDTH


def test_profile_window_writes_a_trace(tmp_path):
    model = FakeModel()
    window = attach(cb.ProfileWindow(tmp_path, first=2, last=3), model)
    for step in range(1, 5):
        window.on_train_batch_begin(step - 1)
        assert window.active == (2 <= step <= 3)
        tf.reduce_sum(tf.ones([8, 8]))
        model.step.assign(step)
        window.on_train_batch_end(step - 1)
    window.on_train_end()
    assert list((tmp_path / "plugins" / "profile").rglob("*.xplane.pb"))
