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

from stargan_keras import families
from stargan_keras.core.config import (ConfigArgumentParser, ConfigError, RunConfig, add_config_flags,
                                       overrides_from_args, preset_names)
from stargan_keras.core.errors import EXIT_INTERRUPTED, EXIT_NON_FINITE, command
from stargan_keras.core.run_dir import RunDir
from stargan_keras.core.session import NonFiniteLoss, Outcome, train

COMMAND = "python -m stargan_keras.train"


def build_parser(family_name: str = families.DEFAULT) -> ConfigArgumentParser:
    """The flags of one family: `train --help` shows StarGAN v2's fields, `train --model v1 --help` v1's."""
    family = families.get(family_name)
    parser = ConfigArgumentParser(
        prog=COMMAND, unknown_flag_hint=families.other_family_flag(family_name),
        description=f"Train {family.title} (--model chooses the family: {families.describe()}). With no argument "
                    "(or --model alone): the embedded `shapes` dataset, in minutes on a CPU. Re-run the same command "
                    "to resume the run directory's latest checkpoint.")
    families.add_family_flag(parser)
    parser.add_argument("--config", default=None, metavar="PRESET_OR_YAML",
                        help=f"a preset ({', '.join(preset_names())}) or a YAML file; default: the family's preset "
                             "for --dataset if there is one, else its shapes preset")
    parser.add_argument("--init-from", default=None, metavar="PATH",
                        help="StarGAN v2: start a new run from the authors' {step}_nets.ckpt (continuing their "
                             "training at that step, with {step}_nets_ema.ckpt and {step}_optims.ckpt beside it), "
                             "or fine-tune from {step}_nets_ema.ckpt or a converted model directory")
    parser.add_argument("--discriminator-checkpoint", default=None, metavar="FILE",
                        help="with --init-from *_nets_ema.ckpt: the authors' {step}_nets.ckpt whose discriminator "
                             "to fine-tune (default: a fresh one)")
    add_config_flags(parser, family.config_class)
    return parser


def config_from_args(argv) -> tuple[RunConfig, dict]:
    """The requested config (preset or YAML, then flags) and the flags given explicitly."""
    argv = list(argv)
    family = families.of_command_line(argv)
    return _config(build_parser(family).parse_args(argv), family)


def _config(args, family_name: str) -> tuple[RunConfig, dict]:
    family = families.get(args.model_family or family_name)
    overrides = overrides_from_args(args, family.config_class)
    dataset = overrides.get("dataset")
    name = args.config if args.config is not None else family.preset_for(dataset, preset_names())
    config = families.load_config(name)
    if type(config) is not family.config_class:
        raise ConfigError(f"--model {args.model_family} does not match --config {name}, a {config.FAMILY} "
                          "configuration; drop one of them.")
    if dataset and "run_dir" not in overrides and dataset != config.data.dataset:
        overrides["run_dir"] = str(Path("runs") / f"{family.run_dir_prefix}{Path(dataset).name}")
    return config.replace(**overrides).validate(), overrides


def _warm_start(args, config: RunConfig):
    """--init-from and --discriminator-checkpoint, checked before any work (None without --init-from)."""
    if args.init_from is None:
        if args.discriminator_checkpoint:
            raise ConfigError("--discriminator-checkpoint needs --init-from (the networks to fine-tune with it).")
        return None
    from stargan_keras.presets import resolve_model

    return families.of_config(config).resolve_warm_start(resolve_model(args.init_from), args.discriminator_checkpoint)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def print_summary(config: RunConfig, outcome: Outcome, domain_images) -> None:
    steps = outcome.step - outcome.start_step
    speed = f" ({steps / outcome.seconds:.2f} steps/s)" if steps and outcome.seconds > 0 else ""
    print(f"step {outcome.step} of {config.train.total_iters}: {steps} steps in {_duration(outcome.seconds)}{speed}")
    if outcome.checkpoint:
        print(f"latest checkpoint: {outcome.checkpoint}")
    samples = f"samples: {RunDir(config.run_dir).samples}/   " if config.train.sample_every else ""
    print(f"{samples}open it in Python: stargan_keras.load({config.run_dir!r})")
    print(domain_images.bad_file_summary() or "bad image files skipped: none")


@command
def main(argv=None) -> int:
    """The train command; exit codes as `stargan_keras.core.errors` says (3: a non-finite loss stopped the run)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        family = families.of_command_line(argv)
        args = build_parser(family).parse_args(argv)
        config, explicit = _config(args, family)
        outcome, domain_images = train(config, explicit, families.of_config(config), _warm_start(args, config))
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
