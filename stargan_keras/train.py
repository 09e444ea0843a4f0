"""`python -m stargan_keras.train`: train StarGAN v2, resuming the run directory's latest checkpoint.

A run directory holds `config.yaml` (the effective config), `checkpoints/` (the last
`--keep-checkpoints` of them, every `--save-every` steps and at the end), `samples/`
(JPEG grids every `--sample-every` steps) and `logs/` (TensorBoard). Re-running the same
command continues where the last run stopped, exactly: the checkpoint holds every
network, EMA copy, optimizer state and the step, and the input pipeline is a pure
function of (seed, step). Ctrl-C or SIGTERM finishes the current step, saves and exits;
a non-finite loss stops the run before its weights are saved.

Exit status: 0 done, 1 non-finite loss, 2 bad configuration or data, 130 interrupted (resumable).
"""

from __future__ import annotations

import dataclasses
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path

import keras
import tensorflow as tf

from stargan_keras import callbacks as cb
from stargan_keras.config import (Config, ConfigArgumentParser, ConfigError, add_config_flags, load_config,
                                  overrides_from_args, preset_names)

EXIT_NON_FINITE, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
DATASET_PRESETS = {"afhq_v2": "afhq"}  # datasets without a preset of their own name
SAMPLE_COLUMNS = 8  # about this many images per grid row, rounded to a multiple of the domains
COMMAND = "python -m stargan_keras.train"


@dataclasses.dataclass
class RunDir:
    """The layout of a run directory."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    @property
    def logs(self) -> Path:
        return self.root / "logs"


@dataclasses.dataclass
class Outcome:
    """How a training session ended."""

    start_step: int
    step: int
    seconds: float
    checkpoint: str | None
    signal_name: str | None = None


def build_parser() -> ConfigArgumentParser:
    parser = ConfigArgumentParser(
        prog=COMMAND,
        description="Train StarGAN v2. With no argument: the embedded `shapes` dataset, in minutes on a CPU. "
                    "Re-run the same command to resume the run directory's latest checkpoint.")
    parser.add_argument("--config", default=None, metavar="PRESET_OR_YAML",
                        help=f"a preset ({', '.join(preset_names())}) or a YAML file; default: the preset named "
                             "like --dataset if there is one, else shapes")
    add_config_flags(parser)
    return parser


def config_from_args(argv) -> tuple[Config, dict]:
    """The requested config (preset or YAML, then flags) and the flags given explicitly."""
    args = build_parser().parse_args(argv)
    overrides = overrides_from_args(args)
    name = args.config
    if name is None:
        dataset = overrides.get("dataset")
        name = DATASET_PRESETS.get(dataset, dataset) if dataset else "shapes"
        if name not in preset_names():
            name = "shapes"
    config = load_config(name)
    dataset = overrides.get("dataset")
    if dataset and "run_dir" not in overrides and dataset != config.data.dataset:
        overrides["run_dir"] = str(Path("runs") / Path(dataset).name)
    return config.replace(**overrides).validate(), overrides


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
    if not run.config.exists() or tf.train.latest_checkpoint(str(run.checkpoints)) is None:
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


def build_model(config: Config, strategy, checkpoint_dir: Path, latest: str | None):
    """StarGANv2 in the strategy's scope, its checkpoint manager, and the latest checkpoint restored."""
    from stargan_keras.distribute import set_precision
    from stargan_keras.trainer import StarGANv2

    set_precision(config.train.precision)
    keras.utils.set_random_seed(config.train.seed)  # the same initial weights in every process
    with strategy.scope():
        model = StarGANv2(config)
        model.compile()
    checkpoint = model.checkpoint()
    manager = tf.train.CheckpointManager(checkpoint, str(checkpoint_dir), max_to_keep=config.train.keep_checkpoints)
    if latest:
        try:
            checkpoint.restore(latest).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as err:
            raise ConfigError(f"checkpoint {latest} does not fit the requested model ({type(err).__name__}: "
                              f"{str(err)[:300]}). Pass --run-dir NEW_DIR to start a new run.") from None
    return model, manager


def make_callbacks(config: Config, run: RunDir, model, manager, val_batch, start: int, chief: bool) -> list:
    """The callbacks in the order they must run: a non-finite step is caught before the saver sees it, and
    the signal handlers, installed last, stay until the final checkpoint and samples are written."""
    train_config = config.train
    callbacks = [cb.StopOnNonFiniteLoss(), cb.PeriodicCheckpoint(manager, train_config.save_every)]
    if chief:
        writer = tf.summary.create_file_writer(str(run.logs))
        callbacks += [
            cb.TensorBoardScalars(writer, train_config.log_every, model.optimizers),
            cb.SampleGrids(model.nets_ema, val_batch, train_config.sample_every, run.samples, writer,
                           config.model.num_domains, config.model.latent_dim, seed=train_config.seed),
        ]
        profile = parse_profile_steps(train_config.profile_steps)
        if profile:
            callbacks.append(cb.ProfileWindow(run.logs, *profile))
    callbacks += [cb.ProgressBar(start, train_config.total_iters), cb.StopOnSignal()]
    return callbacks


def train(config: Config, explicit: dict) -> tuple[Outcome, object]:
    """Prepare the run directory, build or restore the model, and fit up to --total-iters."""
    from stargan_keras.data.pipeline import fixed_val_batch, make_train_dataset
    from stargan_keras.distribute import make_strategy

    parse_profile_steps(config.train.profile_steps)
    run = RunDir(Path(config.run_dir))
    # Fail before a long dataset scan when the sizes already differ; the domains are known after it.
    check_resumable(run, config, ignore=("num_domains", "domain_names"), quiet=True)
    strategy = make_strategy(config.train.strategy)
    domain_images = load_data(config)
    config = adopt_dataset_domains(config, domain_images, explicit).validate()
    check_resumable(run, config)
    latest = tf.train.latest_checkpoint(str(run.checkpoints))
    # Under multi-worker training only the chief writes the run directory; the others
    # must still take part in every save, into a scratch directory removed at the end.
    chief = strategy.extended.should_checkpoint
    if chief:
        run.root.mkdir(parents=True, exist_ok=True)
        config.save(run.config)
    scratch = None if chief else tempfile.TemporaryDirectory(prefix="stargan_keras_worker_")
    checkpoint_dir = run.checkpoints if chief else Path(scratch.name)
    try:
        model, manager = build_model(config, strategy, checkpoint_dir, latest)
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
    finally:
        if scratch is not None:
            scratch.cleanup()


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


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def print_summary(config: Config, outcome: Outcome, domain_images) -> None:
    steps = outcome.step - outcome.start_step
    speed = f" ({steps / outcome.seconds:.2f} steps/s)" if steps and outcome.seconds > 0 else ""
    print(f"step {outcome.step} of {config.train.total_iters}: {steps} steps in {_duration(outcome.seconds)}{speed}")
    if outcome.checkpoint:
        print(f"latest checkpoint: {outcome.checkpoint}")
    print(f"samples: {Path(config.run_dir) / 'samples'}/   open it in Python: stargan_keras.load({config.run_dir!r})")
    print(domain_images.bad_file_summary() or "bad image files skipped: none")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        config, explicit = config_from_args(argv)
        outcome, domain_images = train(config, explicit)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except NonFiniteLoss as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_NON_FINITE
    except KeyboardInterrupt:
        print("\ninterrupted; nothing new was saved. Re-run the same command to resume from the latest "
              "checkpoint.", file=sys.stderr)
        return EXIT_INTERRUPTED
    print_summary(config, outcome, domain_images)
    if outcome.signal_name:
        print(f"stopped by {outcome.signal_name} at step {outcome.step}; checkpoint saved. Resume with: "
              f"{shlex.join([*COMMAND.split(), *argv])}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
