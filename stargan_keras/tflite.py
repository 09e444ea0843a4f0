"""Convert an exported SavedModel to TFLite for on-device demos, and prove the file computes the same thing.

    python -m stargan_keras.tflite --saved-model models/stargan/1 --output stargan.tflite --quantize none
    python -m stargan_keras.tflite --saved-model models/stargan/1 --output stargan_int8.tflite --quantize dynamic
    python -m stargan_keras.tflite --saved-model models/stargan/1 --output stargan.tflite --check

The file has the SavedModel's uint8 tensor signatures (those marked TFLite in the
table of serving/README.md) with the same input and output names, built from builtin
TFLite ops only. On device, images must already be S x S (the app resizes them) and
domain indices are not range-checked (the app passes valid domains); each call
translates one image (batch 1, static shapes) and `psi` is a scalar. The bytes and
metadata signatures are not converted (string tensors); domain names are in the
export's `assets/domain_names.txt`. `stargan_keras.serving.tflite` says why.

Every conversion is verified on the spot: each TFLite signature runs on a test
image next to the same signature of the SavedModel, and a line per signature
reports max abs error, PSNR, file size and latency. `--check` reruns that.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from stargan_keras.core.errors import command
from stargan_keras.core.imaging import check_image_file
from stargan_keras.serving.outputs import check_writable_file
from stargan_keras.serving.tflite import QUANTIZATIONS, TFLiteError, convert, load_export, verify


def format_results(results) -> str:
    lines = [f"{'signature':<22}{'max abs err':>12}{'PSNR dB':>10}{'size MB':>10}{'latency s':>11}"]
    for r in results:
        lines.append(f"{r['signature']:<22}{r['max_abs_error']:>12.4g}{r['psnr_db']:>10.2f}"
                     f"{r['file_bytes'] / 1e6:>10.2f}{r['latency_s']:>11.3f}")
    return "\n".join(lines)


@command
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stargan_keras.tflite", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--saved-model", required=True,
                        help="an export version directory, e.g. models/stargan/1, or a preset name such as "
                             "stargan_v2_afhq (exported first into a temporary directory; python -m stargan_keras "
                             "presets lists them)")
    parser.add_argument("--output", required=True, help="the .tflite file to write (or to check)")
    parser.add_argument("--quantize", choices=QUANTIZATIONS, default="none",
                        help="none: float32; float16: half-size weights; dynamic: int8 weights (dynamic range)")
    parser.add_argument("--check", action="store_true", help="only verify an existing --output file")
    parser.add_argument("--image", default=None, help="test image for the verification (default: synthetic)")
    parser.add_argument("--reference", default=None, help="test reference image (default: synthetic)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per signature (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads (default: all cores)")
    args = parser.parse_args(argv)
    for flag, image in (("--image", args.image), ("--reference", args.reference)):
        if image is not None:  # before the conversion, which takes a while
            check_image_file(image, f"{flag} {image}")
    with tempfile.TemporaryDirectory(prefix="stargan-tflite-") as workdir:
        saved_model = _saved_model(args.saved_model, Path(workdir))
        loaded = None  # a check loads the export itself; a conversion shares its load with the check after it
        if not args.check:
            check_writable_file(args.output, "--output", TFLiteError)  # before the export is loaded
            start = time.perf_counter()
            loaded = load_export(saved_model)
            path = convert(saved_model, args.output, args.quantize, loaded)
            print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, --quantize {args.quantize}) "
                  f"in {time.perf_counter() - start:.0f}s; verifying against {args.saved_model}")
        results = verify(args.output, saved_model, args.image, args.reference, args.runs, args.threads,
                         loaded=loaded)
    print(format_results(results))
    return 0


def _saved_model(value: str, workdir: Path):
    """`--saved-model` as given, or for a preset name its model exported into `workdir` (as the demo does)."""
    from stargan_keras.presets import PRESETS, resolve_model

    if value not in PRESETS or Path(value).exists():
        return value
    from stargan_keras.serving.export import export_saved_model, load_model

    return export_saved_model(load_model(resolve_model(value)), workdir / "export", version=1, progress=True)


if __name__ == "__main__":
    sys.exit(main())
