"""Export the EMA networks as a SavedModel that TF Serving loads as is.

`python -m stargan_keras.export --checkpoint runs/afhq --output models/stargan` writes
`models/stargan/<version>/` (TF Serving's layout). Its signatures, their tensor names,
dtypes and shapes (the contract for clients) are the tables in serving/README.md (StarGAN v1 models,
`model_family: v1`, get the v1 table's `translate` signatures),
generated from `stargan_keras.serving.signatures`; `stargan_keras.serving.module`
says how they check and resize their inputs.

`--format onnx` writes one ONNX file per translation signature instead (OUTPUT/latent_guided.onnx and
OUTPUT/reference_guided.onnx; v1: OUTPUT/translate.onnx), converted by tf2onnx from the same serving
module (`stargan_keras.serving.onnx_export`; needs `pip install "stargan-keras[onnx]"`).

Exit status: 0 exported; 2 a flag, directory or model that cannot be used (one line,
`--debug` for the traceback); 1 an internal error (with its traceback).
"""

from __future__ import annotations

import argparse
import sys

from stargan_keras import families
from stargan_keras.core.errors import command
from stargan_keras.core.imaging import MAX_IMAGE_PIXELS
from stargan_keras.presets import resolve_model
from stargan_keras.serving.export import check_output, export_saved_model, load_model
from stargan_keras.serving.signatures import SERVING_DEFAULT
from stargan_keras.v2.inference import MEAN_STYLE_SAMPLES

FORMATS = ("saved_model", "onnx")
DEFAULT_OUTPUT = {"saved_model": "models/stargan", "onnx": "models/stargan_onnx"}


@command
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stargan_keras.export", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True,
                        help="a training run directory, a model directory (config.yaml + *.weights.h5), or a preset "
                             "name such as stargan_v2_afhq (list: python -m stargan_keras presets)")
    parser.add_argument("--format", choices=FORMATS, default=FORMATS[0],
                        help="saved_model (TF Serving, the default) or onnx (one .onnx file per translation)")
    parser.add_argument("--output", default=None,
                        help="TF Serving model base path, the export goes to OUTPUT/<version>/ (default "
                             f"{DEFAULT_OUTPUT['saved_model']}); with --format onnx the directory of the .onnx "
                             f"files (default {DEFAULT_OUTPUT['onnx']})")
    parser.add_argument("--version", type=int, default=None, help="default: one more than the latest version there")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into an OUTPUT that holds other files than versions, or replace --version")
    parser.add_argument("--mean-style-samples", type=int, default=MEAN_STYLE_SAMPLES,
                        help="z samples per domain for the mean styles used by psi < 1")
    parser.add_argument("--max-image-pixels", type=int, default=MAX_IMAGE_PIXELS,
                        help="the most pixels (width x height) an input image may have, checked before decoding "
                             f"encoded ones (default {MAX_IMAGE_PIXELS:,})")
    parser.add_argument("--model-name", default=None, help="model name in the warmup requests (default: OUTPUT's name)")
    args = parser.parse_args(argv)
    if args.mean_style_samples < 1:
        parser.error(f"--mean-style-samples {args.mean_style_samples}: must be at least 1")
    if args.max_image_pixels < 1:
        parser.error(f"--max-image-pixels {args.max_image_pixels}: must be at least 1")
    output = args.output or DEFAULT_OUTPUT[args.format]
    if args.format == "onnx":
        if args.version is not None or args.model_name is not None:
            parser.error("--version and --model-name are TF Serving's: drop them with --format onnx")
        return _export_onnx(args, output)
    check_output(output, args.version, args.overwrite)  # before the work, which takes a while
    translator = load_model(resolve_model(args.checkpoint))
    path = export_saved_model(translator, output, args.version, args.mean_style_samples, args.model_name,
                              progress=True, max_image_pixels=args.max_image_pixels, overwrite=args.overwrite)
    table = families.of_config(translator.config).signatures
    print(f"exported {path} with signatures {', '.join(table.names)} ({SERVING_DEFAULT} = {table.default})")
    return 0


def _export_onnx(args, output) -> int:
    from stargan_keras.serving import onnx_export

    onnx_export.require_converter()  # before loading the model
    translator = load_model(resolve_model(args.checkpoint))
    paths = onnx_export.export_onnx(translator, output, args.mean_style_samples, args.overwrite, progress=True)
    print(f"exported {', '.join(str(p) for p in paths.values())} (ONNX opset {onnx_export.OPSET}, dynamic batch)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
