"""`python -m stargan_keras.fid --paths REAL FAKE`: the FID between two folders of images.

The counterpart of the authors' `python -m metrics.fid --paths PATH_REAL PATH_FAKE`: every
image (searched recursively, .jpg/.jpeg/.png) is resized to `--img-size` and then to 299 px
with PIL's bilinear filter, and the Fréchet distance of the two sets' InceptionV3 pool
features is printed. The network is torchvision's InceptionV3 (the paper's) unless
`--inception keras`.

    python -m stargan_keras.fid --paths data/afhq/train/dog runs/afhq/eval/images/latent/cat2dog \\
        --inception-weights inception_torchvision.weights.h5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stargan_keras.core.errors import command
from stargan_keras.metrics.fid import (AUTHORS_IMG_SIZE, FidError, FidFeatureExtractor, add_inception_arguments,
                                       fid_of_folders, folder_image_files, inception_from_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stargan_keras.fid", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paths", nargs=2, type=Path, required=True, metavar=("REAL", "FAKE"),
                        help="the two image folders")
    parser.add_argument("--img-size", type=int, default=AUTHORS_IMG_SIZE,
                        help=f"images are resized to this size before 299 px, as the authors do "
                             f"(default {AUTHORS_IMG_SIZE})")
    parser.add_argument("--batch-size", type=int, default=50, help="images per InceptionV3 batch")
    add_inception_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


@command
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for flag in ("img_size", "batch_size"):
        if getattr(args, flag) < 1:
            raise FidError(f"--{flag.replace('_', '-')} {getattr(args, flag)}: must be at least 1.")
    for folder in args.paths:  # before the network is built: a typo fails in a second
        folder_image_files(folder)
    try:
        extractor = FidFeatureExtractor(**inception_from_args(args),
                                        batch_size=args.batch_size)
    except FileNotFoundError as err:
        raise FidError(str(err)) from None
    value = fid_of_folders(extractor, args.paths, args.img_size, progress=not args.quiet)
    print(f"FID: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
