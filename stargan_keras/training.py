"""A training session of a run directory: resume checks, the model, its callbacks and `fit`.

The run directory's layout is `checkpoint.RunDir`. Re-running a session continues where
the last one stopped, exactly: the checkpoint holds every network, EMA copy, optimizer
state and the step, and the input pipeline is a pure function of (seed, step).
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from stargan_keras import callbacks as cb
from stargan_keras.checkpoint import RunDir
from stargan_keras.config import Config, ConfigError

SAMPLE_COLUMNS = 8  # about this many images per grid row, rounded to a multiple of the domains


@dataclasses.dataclass
class Outcome:
    """How a training session ended."""

    start_step: int
    step: int
    seconds: float
    checkpoint: str | None
    signal_name: str | None = None


def adopt_dataset_domains(config: Config, domain_images, explicit: dict) -> Config:
    """The networks get the dataset's domains, unless the user named other ones on the command line."""
    names = list(domain_images.domain_names)
    if config.model.domain_names == names and config.model.num_domains == len(names):
        return config
    given = [f"--{k.replace('_', '-')} {explicit[k]}" for k in ("num_domains", "domain_names") if k in explicit]
    if given:
        raise ConfigError(f"{' '.join(given)} does not match dataset {domain_images.name}, whose domains are "
                          f"{', '.join(names)}; drop the flag or pass --domain-names {','.join(names)}.")
    return config.replace(num_domains=len(names), domain_names=names)


def network_differences(saved: Config, wanted: Config, ignore=()) -> list[str]:
    """The model fields (as flags) whose values differ: a checkpoint of one cannot be loaded into the other."""
    diffs = []
    for f in dataclasses.fields(saved.model):
        if f.name in ignore:
            continue
        old, new = getattr(saved.model, f.name), getattr(wanted.model, f.name)
        if f.name == "base_dim":
            old, new = saved.model.resolved_base_dim, wanted.model.resolved_base_dim
        if old != new:
            diffs.append(f"--{f.name.replace('_', '-')} (run: {old}, requested: {new})")
    return diffs


def other_differences(saved: Config, wanted: Config) -> list[str]:
    diffs = []
    for section in ("data", "train"):
        old, new = dataclasses.asdict(getattr(saved, section)), dataclasses.asdict(getattr(wanted, section))
        diffs += [f"--{k.replace('_', '-')} {old[k]} -> {new[k]}" for k in old if old[k] != new.get(k)]
    return diffs


def check_resumable(run: RunDir, config: Config, ignore=(), quiet: bool = False) -> None:
    """Refuse to resume a run whose networks differ from the requested ones; note other changes."""
    if not run.config.exists() or run.latest_checkpoint() is None:
        return
    saved = Config.load(run.config)
    diffs = network_differences(saved, config, ignore)
    if diffs:
        raise ConfigError(
            f"run directory {run.root} holds a run with other networks: {'; '.join(diffs)}. Pass --run-dir NEW_DIR "
            f"to start a new run, or the run's own settings (e.g. --config {run.config}) to resume it.")
    changes = [] if quiet else other_differences(saved, config)
    if changes:
        print(f"resuming {run.root} with changed settings: {', '.join(changes)}", flush=True)


def parse_profile_steps(text: str) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        first, last = (int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"--profile-steps {text!r}: expected two step numbers FIRST,LAST such as 10,20.") from None
    if not 1 <= first <= last:
        raise ConfigError(f"--profile-steps {text!r}: expected 1 <= FIRST <= LAST.")
    return first, last


def load_data(config: Config):
    """The dataset; data errors become ConfigErrors, printed without a traceback."""
    from stargan_keras.data.pipeline import load_dataset

    try:
        return load_dataset(config)
    except ConfigError:
        raise
    except (ValueError, OSError) as err:
        raise ConfigError(f"--dataset {config.data.dataset}: {err}") from None


def build_model(config: Config, strategy, checkpoint_dir: Path, run: RunDir):
    """StarGANv2 in the strategy's scope, its checkpoint manager, and the run's newest readable checkpoint
    restored (its prefix, or None for a new run)."""
    from stargan_keras.distribute import set_precision
    from stargan_keras.trainer import StarGANv2

    set_precision(config.train.precision)
    keras.utils.set_random_seed(config.train.seed)  # the same initial weights in every process
    with strategy.scope():
        model = StarGANv2(config)
        model.compile()
    checkpoint = model.checkpoint()
    restored = run.restore_latest(checkpoint)
    manager = tf.train.CheckpointManager(checkpoint, str(checkpoint_dir), max_to_keep=config.train.keep_checkpoints)
    return model, manager, restored


def checkpoint_bytes(model) -> int:
    """The size of one training checkpoint: every network, EMA copy and optimizer variable."""
    variables = [v for networks in (model.nets, model.nets_ema) for _, net in networks.items() for v in net.weights]
    variables += [v for optimizer in model.optimizers.values() for v in optimizer.variables]
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables)


def make_callbacks(config: Config, run: RunDir, model, manager, val_batch, start: int, chief: bool) -> list:
    """The callbacks in the order they must run: a non-finite step is caught before the saver sees it, and
    the signal handlers, installed last, stay until the final checkpoint and samples are written."""
    train_config = config.train
    callbacks = [cb.StopOnNonFiniteLoss(), cb.PeriodicCheckpoint(manager, train_config.save_every)]
    if chief:
        writer = tf.summary.create_file_writer(str(run.logs))
        callbacks += [
            cb.TensorBoardScalars(writer, train_config.log_every, model.optimizers),
            cb.SampleGrids(config, model.nets_ema, val_batch, train_config.sample_every, run.samples, writer,
                           seed=train_config.seed),
        ]
        profile = parse_profile_steps(train_config.profile_steps)
        if profile:
            callbacks.append(cb.ProfileWindow(run.logs, *profile))
    callbacks += [cb.ProgressBar(start, train_config.total_iters), cb.StopOnSignal()]
    return callbacks


def train(config: Config, explicit: dict) -> tuple[Outcome, object]:
    """Hold the run directory, build or restore the model, and fit up to --total-iters."""
    from stargan_keras.distribute import make_strategy

    parse_profile_steps(config.train.profile_steps)
    run = RunDir(Path(config.run_dir))
    # Fail before a long dataset scan when the sizes already differ; the domains are known after it.
    check_resumable(run, config, ignore=("num_domains", "domain_names"), quiet=True)
    strategy = make_strategy(config.train.strategy)
    # Under multi-worker training only the chief writes the run directory; the others
    # must still take part in every save, into a scratch directory removed at the end.
    chief = strategy.extended.should_checkpoint
    with contextlib.ExitStack() as held:
        if chief:
            held.enter_context(run.lock())
        else:
            scratch = held.enter_context(tempfile.TemporaryDirectory(prefix="stargan_keras_worker_"))
        return _train_locked(config, explicit, run, strategy, chief, run.checkpoints if chief else Path(scratch))


def _train_locked(config: Config, explicit: dict, run: RunDir, strategy, chief: bool, checkpoint_dir: Path):
    from stargan_keras.data.pipeline import fixed_val_batch, make_train_dataset

    domain_images = load_data(config)
    config = adopt_dataset_domains(config, domain_images, explicit).validate()
    check_resumable(run, config)
    if chief:
        config.save(run.config)
    model, manager, latest = build_model(config, strategy, checkpoint_dir, run)
    if chief:
        run.check_room(checkpoint_bytes(model))
    start, total = int(model.step.numpy()), config.train.total_iters
    print_start(config, run, domain_images, strategy, start, latest)
    if start >= total:
        print(f"{run.root} is already at step {start} of --total-iters {total}; raise --total-iters to train on.")
        return Outcome(start, start, 0.0, latest), domain_images

    val_batch = fixed_val_batch(config, domain_images, _sample_columns(domain_images.num_domains))
    callbacks = make_callbacks(config, run, model, manager, val_batch, start, chief)
    began = time.perf_counter()
    try:
        model.fit(make_train_dataset(config, domain_images, start_step=start), epochs=1,
                  steps_per_epoch=total - start, callbacks=callbacks, verbose=0, shuffle=False)
    except cb.NonFiniteLossError as err:
        last_good = manager.latest_checkpoint
        where = (f"the last good checkpoint, {last_good}, is kept and re-running the command resumes from it"
                 if last_good else "no checkpoint had been saved yet")
        hint = "" if config.train.precision == "float32" else ", try --precision float32"
        raise NonFiniteLoss(f"{err}. Training stopped without saving that step; {where}. Lower --lr / --f-lr"
                            f"{hint} or check the data.") from None
    step, received = int(model.step.numpy()), callbacks[-1].received
    stopped_by = signal.Signals(received).name if received is not None and step < total else None
    return Outcome(start, step, time.perf_counter() - began, manager.latest_checkpoint, stopped_by), domain_images


class NonFiniteLoss(RuntimeError):
    """The run stopped on a non-finite loss; the message says which step, term and checkpoint."""


def _sample_columns(num_domains: int) -> int:
    return num_domains * max(1, round(SAMPLE_COLUMNS / num_domains))


def print_start(config: Config, run: RunDir, domain_images, strategy, start: int, latest: str | None) -> None:
    t = config.train
    state = f"resuming from step {start} ({latest})" if latest else "new run"
    print(f"{domain_images.describe()}\n"
          f"{config.model.img_size} px, batch {t.batch_size} on {strategy.num_replicas_in_sync} replica(s), "
          f"{t.precision}, {t.total_iters} steps; {state}\n"
          f"  run directory  {run.root}  (effective config: {run.config})\n"
          f"  samples        {run.samples}/  every {t.sample_every} steps\n"
          f"  checkpoints    {run.checkpoints}/  every {t.save_every} steps, last {t.keep_checkpoints} kept\n"
          f"  logs           {run.logs}/  watch with: tensorboard --logdir {run.logs}", flush=True)
