r"""`python -m stargan_keras.metrics.convert_weights`: the metric networks' torch weights as Keras files.

The metric networks (LPIPS' AlexNet and linear layers, torchvision's InceptionV3) are
published as PyTorch state dicts. Torch is an optional extra, needed only to read them:
converted `.weights.h5` files load without it.

    python -m stargan_keras.metrics.convert_weights \
        --lpips-linear lpips_weights.ckpt --alexnet alexnet-owt-7be5be79.pth \
        --output lpips.weights.h5
    python -m stargan_keras.metrics.convert_weights \
        --torchvision-inception inception_v3_google-0cc3c7bd.pth \
        --output inception_torchvision.weights.h5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stargan_keras.core.errors import command


@command
def main(argv: list[str] | None = None) -> int:
    """Convert the LPIPS or the torchvision InceptionV3 weights into one `.weights.h5` file."""
    parser = argparse.ArgumentParser(
        prog="python -m stargan_keras.metrics.convert_weights", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lpips-linear", type=Path,
                        help="LPIPS linear weights (the StarGAN v2 release's metrics/lpips_weights.ckpt)")
    parser.add_argument("--alexnet", type=Path,
                        help="torchvision AlexNet weights (alexnet-owt-7be5be79.pth)")
    parser.add_argument("--torchvision-inception", type=Path,
                        help="torchvision InceptionV3 weights (inception_v3_google-0cc3c7bd.pth)")
    parser.add_argument("--output", type=Path, required=True, help="the .weights.h5 file to write")
    args = parser.parse_args(argv)

    lpips_wanted = args.lpips_linear is not None or args.alexnet is not None
    if lpips_wanted == (args.torchvision_inception is not None):
        parser.error("give either --lpips-linear and --alexnet, or --torchvision-inception.")
    if lpips_wanted and (args.lpips_linear is None or args.alexnet is None):
        parser.error("LPIPS needs both --lpips-linear and --alexnet.")
    if not args.output.name.endswith(".weights.h5"):
        parser.error(f"--output {args.output}: Keras needs a name ending in .weights.h5.")

    for flag in ("lpips_linear", "alexnet", "torchvision_inception"):
        path = getattr(args, flag)
        if path is not None and not path.is_file():
            parser.error(f"--{flag.replace('_', '-')} {path}: no such file.")

    from stargan_keras.metrics import inception, lpips

    try:
        if lpips_wanted:
            model = lpips.LPIPS.from_torch_files(args.alexnet, args.lpips_linear)
        else:
            model = inception.torchvision_inception_v3(args.torchvision_inception)
    except (ImportError, ValueError) as error:  # StateDictError is a ValueError
        parser.error(str(error))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
