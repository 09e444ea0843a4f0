"""`python -m stargan_keras.train`: train StarGAN v2 (or StarGAN v1, `--model v1`), resuming the run directory's
latest checkpoint.

A run directory holds `config.yaml` (the effective config), `checkpoints/` (the last
`--keep-checkpoints` of them, every `--save-every` steps and at the end), `samples/`
(JPEG grids every `--sample-every` steps) and `logs/` (TensorBoard). Re-running the same
command continues where the last run stopped, exactly: the checkpoint holds every
network, EMA copy, optimizer state and the step, and the input pipeline is a pure
function of (seed, step). Ctrl-C or SIGTERM finishes the current step, saves and exits;
a non-finite loss stops the run before its weights are saved.

Exit status: 0 done, 2 bad configuration or data (one line; --debug shows the traceback), 3 non-finite
loss, 130 interrupted (resumable), 1 an internal error (with its traceback).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from stargan_keras.checkpoint import RunDir
from stargan_keras.config import (Config, ConfigArgumentParser, ConfigError, add_config_flags, load_config,
                                  overrides_from_args, preset_names)
from stargan_keras.errors import EXIT_INTERRUPTED, EXIT_NON_FINITE, command
from stargan_keras.training import NonFiniteLoss, Outcome, train

DATASET_PRESETS = {"afhq_v2": "afhq"}  # datasets without a preset of their own name
V1_PRESETS = {"shapes": "v1_shapes", "celeba": "v1_celeba", "rafd": "v1_rafd", "both": "v1_both"}
V1_FOLDER_PRESET = "v1_rafd"  # a folder of class folders: categorical labels, as RaFD's
COMMAND = "python -m stargan_keras.train"


def build_parser() -> ConfigArgumentParser:
    parser = ConfigArgumentParser(
        prog=COMMAND,
        description="Train StarGAN v2, or StarGAN v1 with --model v1. With no argument (or --model v1 alone): the "
                    "embedded `shapes` dataset, in minutes on a CPU. Re-run the same command to resume the run "
                    "directory's latest checkpoint.")
    parser.add_argument("--config", default=None, metavar="PRESET_OR_YAML",
                        help=f"a preset ({', '.join(preset_names())}) or a YAML file; default: the preset named "
                             "like --dataset if there is one, else shapes (with --model v1: v1_<dataset>, v1_rafd "
                             "for a folder, else v1_shapes)")
    parser.add_argument("--init-from", default=None, metavar="PATH",
                        help="start a new run from the authors' {step}_nets.ckpt (continuing their training at that "
                             "step, with {step}_nets_ema.ckpt and {step}_optims.ckpt beside it), or fine-tune from "
                             "{step}_nets_ema.ckpt, a converted model directory or a preset name such as "
                             "stargan_v2_afhq (python -m stargan_keras presets)")
    parser.add_argument("--discriminator-checkpoint", default=None, metavar="FILE",
                        help="with --init-from *_nets_ema.ckpt: the authors' {step}_nets.ckpt whose discriminator "
                             "to fine-tune (default: a fresh one)")
    add_config_flags(parser)
    return parser


def config_from_args(argv) -> tuple[Config, dict]:
    """The requested config (preset or YAML, then flags) and the flags given explicitly."""
    return _config(build_parser().parse_args(argv))


def _config(args) -> tuple[Config, dict]:
    overrides = overrides_from_args(args)
    dataset, family = overrides.get("dataset"), overrides.get("model_family")
    name = args.config if args.config is not None else default_preset(dataset, family)
    config = load_config(name)
    if family is not None and family != config.model_family and args.config is not None:
        raise ConfigError(f"--model {family} does not match --config {name}, a {config.model_family} configuration; "
                          f"drop one of them.")
    if dataset and "run_dir" not in overrides and dataset != config.data.dataset:
        prefix = "v1_" if config.model_family == "v1" else ""
        overrides["run_dir"] = str(Path("runs") / f"{prefix}{Path(dataset).name}")
    return config.replace(**overrides).validate(), overrides


def default_preset(dataset: str | None, family: str | None) -> str:
    """The preset named like the dataset (v1: v1_<dataset>), a folder's (v1_rafd for v1), else the shapes one."""
    if family == "v1":
        return V1_PRESETS.get(dataset or "shapes", V1_FOLDER_PRESET)
    name = DATASET_PRESETS.get(dataset, dataset) if dataset else "shapes"
    return name if name in preset_names() else "shapes"


def family_of(config: Config):
    """The model family's part of a training session (the library's `training` knows only StarGAN v2's)."""
    if config.model_family == "v1":
        from stargan_keras.v1.training import V1Family

        return V1Family()
    from stargan_keras.training import Family

    return Family()


def _warm_start(args):
    """--init-from and --discriminator-checkpoint, checked before any work (None without --init-from)."""
    if args.init_from is None:
        if args.discriminator_checkpoint:
            raise ConfigError("--discriminator-checkpoint needs --init-from (the networks to fine-tune with it).")
        return None
    from stargan_keras import warm_start

    return warm_start.resolve(args.init_from, args.discriminator_checkpoint)


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
    print(f"samples: {RunDir(config.run_dir).samples}/   open it in Python: stargan_keras.load({config.run_dir!r})")
    print(domain_images.bad_file_summary() or "bad image files skipped: none")


@command
def main(argv=None) -> int:
    """The train command; exit codes as `stargan_keras.errors` says (3: a non-finite loss stopped the run)."""
    try:
        args = build_parser().parse_args(argv)
        config, explicit = _config(args)
        outcome, domain_images = train(config, explicit, _warm_start(args), family_of(config))
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
