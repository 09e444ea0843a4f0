"""Export the EMA networks as a SavedModel that TF Serving loads as is.

`python -m stargan_keras.export --checkpoint runs/afhq --output models/stargan` writes
`models/stargan/<version>/` (TF Serving's layout). Its signatures, their tensor names,
dtypes and shapes (the contract for clients) are the table in serving/README.md,
generated from `stargan_keras.serving.signatures`; `stargan_keras.serving.module`
says how they check and resize their inputs.
"""

from __future__ import annotations

import argparse
import sys

from .config import ConfigError
from .inference import MEAN_STYLE_SAMPLES, load
from .serving.export import export_saved_model
from .serving.signatures import DEFAULT_SIGNATURE, NAMES, SERVING_DEFAULT


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stargan_keras.export", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True,
                        help="a training run directory or a model directory (config.yaml + *.weights.h5)")
    parser.add_argument("--output", default="models/stargan",
                        help="TF Serving model base path; the export goes to OUTPUT/<version>/")
    parser.add_argument("--version", type=int, default=None, help="default: one more than the latest version there")
    parser.add_argument("--mean-style-samples", type=int, default=MEAN_STYLE_SAMPLES,
                        help="z samples per domain for the mean styles used by psi < 1")
    parser.add_argument("--model-name", default=None, help="model name in the warmup requests (default: OUTPUT's name)")
    args = parser.parse_args(argv)
    if args.mean_style_samples < 1:
        parser.error(f"--mean-style-samples {args.mean_style_samples}: must be at least 1")
    try:
        translator = load(args.checkpoint)
        path = export_saved_model(translator, args.output, args.version, args.mean_style_samples, args.model_name,
                                  progress=True)
    except (ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"exported {path} with signatures {', '.join(NAMES)} ({SERVING_DEFAULT} = {DEFAULT_SIGNATURE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
