"""`python -m stargan_keras.sample`: the paper's figures and videos from a model and folders of images.

SRC and REF hold one folder per domain, named like the model's domains (the layout of the
authors' `assets/representative/<dataset>/{src,ref}`). Written to OUT:
- `reference.jpg`: first row the references, first column the sources, each cell
  G(source, E(reference));
- `latent_psi_{0.5,0.7,1.0}.jpg`: first row the sources, then one row per (domain, z) of
  G(source, truncated F(z, domain));
- `cycle.jpg`: rows source, reference, translation, reconstruction G(translation, E(source));
- `video_ref` and `video_latent` (.mp4 when ffmpeg is on PATH, else animated .gif): the
  style moving from one reference (or latent code) to the next of the same domain, with
  sigmoid-spaced interpolation steps, like the videos of the authors' release.

A StarGAN v1 model (`model_family: v1`) is sampled as the authors' test mode: images of the
test split of its own dataset (`--src` and `--ref` are not used: the targets derive from each
image's labels), written as `translations.jpg` (each input, then one translation per target
label vector) and `interpolation.jpg` (one label moving from the image's value to its target).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stargan_keras import families
from stargan_keras.core.errors import UserError, command
from stargan_keras.presets import resolve_model
from stargan_keras.v2.figures import VIDEO_FORMATS, SampleError

COMMAND = "python -m stargan_keras.sample"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, type=Path,
                        help="a training run directory (latest checkpoint), a model directory, or a preset name "
                             "such as stargan_v2_afhq (list: python -m stargan_keras presets)")
    parser.add_argument("--src", type=Path, help="folder of domain folders of source images (StarGAN v2)")
    parser.add_argument("--ref", type=Path, help="folder of domain folders of reference images (StarGAN v2)")
    parser.add_argument("--rows", type=int, default=8, help="StarGAN v1: test images in the figures")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of the latent codes (same seed, same files)")
    parser.add_argument("--num-latent", type=int, default=5, help="latent codes per domain in the latent grids")
    parser.add_argument("--video-sources", type=int, default=5, help="source images shown in the videos")
    parser.add_argument("--video-format", default="auto", choices=VIDEO_FORMATS,
                        help="auto: mp4 when ffmpeg is on PATH, else gif")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


@command
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.checkpoint = resolve_model(args.checkpoint)
    try:
        written = families.of_directory(args.checkpoint).sample(args)
    except (OSError, ValueError) as err:  # unreadable image files and folders
        if isinstance(err, UserError):
            raise
        raise SampleError(str(err)) from None
    print("\n".join(f"{name:<14}{path}" for name, path in written.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
