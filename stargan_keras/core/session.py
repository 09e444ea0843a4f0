"""A training session of a run directory: resume checks, the model, its callbacks and `fit`.

The run directory's layout is `checkpoint.RunDir`. Re-running a session continues where
the last one stopped, exactly: the checkpoint holds every network, EMA copy, optimizer
state and the step, and the input pipeline is a pure function of (seed, step).

The session is the same for every model family; what differs (the data, the trainer, the
batches, the sample figures) is asked of the config's family (`core.family.Family`), which
the caller finds in the registry (`stargan_keras.families`) and hands over.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import signal
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from stargan_keras.core import callbacks as cb
from stargan_keras.core.config import FAMILY_KEY, ConfigError, RunConfig, read_yaml
from stargan_keras.core.run_dir import RunDir


@dataclasses.dataclass
class Outcome:
    """How a training session ended."""

    start_step: int
    step: int
    seconds: float
    checkpoint: str | None
    signal_name: str | None = None


def other_differences(saved: RunConfig, wanted: RunConfig) -> list[str]:
    """The changed settings outside the networks, as `--flag old -> new`."""
    diffs = []
    for section in ("data", "train"):
        old, new = dataclasses.asdict(getattr(saved, section)), dataclasses.asdict(getattr(wanted, section))
        diffs += [f"--{k.replace('_', '-')} {old[k]} -> {new[k]}" for k in old if old[k] != new.get(k)]
    return diffs


def check_resumable(run: RunDir, config: RunConfig, ignore=(), quiet: bool = False) -> None:
    """Refuse to resume a run whose networks differ from the requested ones; note other changes."""
    if not run.config.exists() or run.latest_checkpoint() is None:
        return
    data = read_yaml(run.config) or {}
    if data.get(FAMILY_KEY, config.FAMILY) != config.FAMILY:
        raise ConfigError(f"run directory {run.root} holds a {FAMILY_KEY} {data[FAMILY_KEY]} run, not {config.FAMILY}: "
                          "pass --run-dir NEW_DIR, or the run's own --model to resume it.")
    saved = type(config).from_dict(data, str(run.config))
    diffs = saved.network_differences(config, ignore)
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


def as_config_error(load, config: RunConfig):
    """`load(config)`, its data errors as ConfigErrors naming --dataset (printed without a traceback)."""
    try:
        return load(config)
    except ConfigError:
        raise
    except (ValueError, OSError) as err:
        raise ConfigError(f"--dataset {config.data.dataset}: {err}") from None


def build_model(config: RunConfig, strategy, checkpoint_dir: Path, run: RunDir, make_trainer):
    """The trainer `make_trainer()` makes, in the strategy's scope and compiled, its checkpoint manager, and the
    run's newest readable checkpoint restored (its prefix, or None for a new run)."""
    from stargan_keras.core.distribute import set_precision, set_tensor_float_32

    set_precision(config.train.precision)
    set_tensor_float_32(config.train.tf32)
    keras.utils.set_random_seed(config.train.seed)  # the same initial weights in every process
    with strategy.scope():
        model = make_trainer()
        model.compile()
    checkpoint = model.checkpoint()
    restored = run.restore_latest(checkpoint)
    if Path(checkpoint_dir) == run.checkpoints:  # the chief's own; other workers save into scratch folders
        run.repair_index()
    manager = tf.train.CheckpointManager(checkpoint, str(checkpoint_dir), max_to_keep=config.train.keep_checkpoints)
    return model, manager, restored


def checkpoint_bytes(model) -> int:
    """The size of one training checkpoint: every network, EMA copy (v2) and optimizer variable."""
    kept = (model.nets, getattr(model, "nets_ema", None))
    variables = [v for networks in kept if networks is not None for _, net in networks.items() for v in net.weights]
    variables += [v for optimizer in model.optimizers.values() for v in optimizer.variables]
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables)


def make_callbacks(config: RunConfig, run: RunDir, model, manager, samples, start: int, chief: bool) -> list:
    """The callbacks in the order they must run: a non-finite step is caught before the saver sees it, and
    the signal handlers, installed last, stay until the final checkpoint and samples are written.
    `samples(writer)` makes the sample-figure callback (the chief's only, unless sample_every is 0)."""
    train_config = config.train
    callbacks = [cb.StopOnNonFiniteLoss(), cb.PeriodicCheckpoint(manager, train_config.save_every)]
    if chief:
        writer = tf.summary.create_file_writer(str(run.logs))
        callbacks.append(cb.TensorBoardScalars(writer, train_config.log_every, model.optimizers))
        if train_config.sample_every:
            callbacks.append(samples(writer))
        profile = parse_profile_steps(train_config.profile_steps)
        if profile:
            callbacks.append(cb.ProfileWindow(run.logs, *profile))
    callbacks += [cb.ProgressBar(start, train_config.total_iters, train_config.log_every), cb.StopOnSignal()]
    return callbacks


def train(config: RunConfig, explicit: dict, family, warm_start=None) -> tuple[Outcome, object]:
    """Hold the run directory, build or restore the model, and fit up to --total-iters.

    `family` is the config's family (`core.family.Family`, from the registry), which is asked what
    differs between families; `warm_start` (its `resolve_warm_start`) is what a new run starts from;
    a run with checkpoints of its own resumes them instead."""
    from stargan_keras.core.distribute import make_strategy

    if family.config_class is not type(config):
        raise ValueError(f"session.train: a {config.FAMILY} config needs its own family, not {family.name}")
    parse_profile_steps(config.train.profile_steps)
    run = RunDir(Path(config.run_dir))
    family.check(config, run, warm_start)
    # Fail before a long dataset scan when the sizes already differ; the domains are known after it.
    check_resumable(run, config, ignore=family.resume_ignore, quiet=True)
    strategy = make_strategy(config.train.strategy)
    # Under multi-worker training only the chief writes the run directory; the others
    # must still take part in every save, into a scratch directory removed at the end.
    chief = strategy.extended.should_checkpoint
    with contextlib.ExitStack() as held:
        if chief:
            held.enter_context(run.lock())
        else:
            scratch = held.enter_context(tempfile.TemporaryDirectory(prefix="stargan_keras_worker_"))
        return _train_locked(config, explicit, run, strategy, chief, run.checkpoints if chief else Path(scratch),
                             warm_start, family)


def _train_locked(config: RunConfig, explicit: dict, run: RunDir, strategy, chief: bool, checkpoint_dir: Path,
                  warm_start, family):
    domain_images = family.load_data(config)
    config = family.adopt(config, domain_images, explicit).validate()
    check_resumable(run, config)
    if chief:
        config.save(run.config)
    model, manager, latest = family.build_model(config, strategy, checkpoint_dir, run, chief)
    if warm_start is not None and latest is None:
        family.warm_start(model, warm_start, config)
    elif warm_start is not None:
        print(f"{run.root} has checkpoints of its own: resuming them; --init-from {warm_start.source} is not read.")
    if chief:
        run.check_room(checkpoint_bytes(model))
    start, total = int(model.step.numpy()), config.train.total_iters
    print_start(config, run, domain_images, strategy, start, latest, family.image_size(config), model)
    if start >= total:
        print(f"{run.root} is already at step {start} of --total-iters {total}; raise --total-iters to train on.")
        return Outcome(start, start, 0.0, latest), domain_images

    samples = functools.partial(family.sample_callback, config, model, domain_images, run)
    callbacks = make_callbacks(config, run, model, manager, samples, start, chief)
    began = time.perf_counter()
    try:
        model.fit(family.train_dataset(config, domain_images, start), epochs=1,
                  steps_per_epoch=total - start, callbacks=callbacks, verbose=0, shuffle=False)
    except cb.NonFiniteLossError as err:
        last_good = manager.latest_checkpoint
        where = (f"the last good checkpoint, {last_good}, is kept and re-running the command resumes from it"
                 if last_good else "no checkpoint had been saved yet")
        hint = "" if config.train.precision == "float32" else ", try --precision float32"
        raise NonFiniteLoss(f"{err}. Training stopped without saving that step; {where}. Lower {family.lr_flags}"
                            f"{hint} or check the data.") from None
    step, received = int(model.step.numpy()), callbacks[-1].received
    stopped_by = signal.Signals(received).name if received is not None and step < total else None
    return Outcome(start, step, time.perf_counter() - began, manager.latest_checkpoint, stopped_by), domain_images


class NonFiniteLoss(RuntimeError):
    """The run stopped on a non-finite loss; the message says which step, term and checkpoint."""


def print_start(config: RunConfig, run: RunDir, domain_images, strategy, start: int, latest: str | None,
                image_size: int, model) -> None:
    t = config.train
    state = f"resuming from step {start} ({latest})" if latest else "new run"
    tf32 = "on (--tf32 true)" if t.tf32 else "off (--tf32 false: float32 as the authors ran it)"
    samples = f"{run.samples}/  every {t.sample_every} steps" if t.sample_every else "none (--sample-every 0)"
    print(f"{domain_images.describe()}\n"
          f"{image_size} px, batch {t.batch_size} on {strategy.num_replicas_in_sync} replica(s), "
          f"{t.precision}, {t.total_iters} steps; {state}\n"
          f"  convolutions   {model.conv_forms} forms ({model.conv_forms_reason})\n"
          f"  TF32           {tf32}\n"
          f"  run directory  {run.root}  (effective config: {run.config})\n"
          f"  samples        {samples}\n"
          f"  checkpoints    {run.checkpoints}/  every {t.save_every} steps, last {t.keep_checkpoints} kept\n"
          f"  logs           {run.logs}/  watch with: tensorboard --logdir {run.logs}", flush=True)
