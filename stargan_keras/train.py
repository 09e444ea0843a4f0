"""`python -m stargan_keras.train`: train StarGAN v2, resuming the run directory's latest checkpoint.

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
from stargan_keras.config import (Config, ConfigArgumentParser, add_config_flags, load_config, overrides_from_args,
                                  preset_names)
from stargan_keras.errors import EXIT_INTERRUPTED, EXIT_NON_FINITE, command
from stargan_keras.training import NonFiniteLoss, Outcome, train

DATASET_PRESETS = {"afhq_v2": "afhq"}  # datasets without a preset of their own name
COMMAND = "python -m stargan_keras.train"


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
        config, explicit = config_from_args(argv)
        outcome, domain_images = train(config, explicit)
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
