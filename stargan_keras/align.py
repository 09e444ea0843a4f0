"""`python -m stargan_keras.align`: align your own face photos as CelebA-HQ is aligned, before translating them.

The StarGAN v2 authors' `python main.py --mode align` (clovaai/stargan-v2 `core/wing.py`):
landmarks from the FAN (`--fan-checkpoint`, the authors' wing.ckpt or a converted
.weights.h5), a similarity transform onto the mean CelebA-HQ landmarks (`--landmarks-mean`,
their celeba_lm_mean.npz), a Lanczos warp. Every .jpg/.jpeg/.png under INPUT (recursively) is
written under OUTPUT with the same relative path, e.g. one folder per domain. Files already in
OUTPUT are kept; unreadable images are skipped and named at the end. Nothing is deleted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from stargan_keras.core.errors import UserError, command

COMMAND = "python -m stargan_keras.align"
MIN_SIZE = 64  # the FAN's heatmaps are 64 px
MAX_NAMED = 10  # unreadable files named in the summary line


class AlignCommandError(UserError):
    """A flag of `align` that cannot work; the message names it."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, type=Path, help="folder of face images (searched recursively)")
    parser.add_argument("--output", required=True, type=Path, help="folder for the aligned images (not in INPUT)")
    parser.add_argument("--fan-checkpoint", required=True, type=Path,
                        help="the authors' wing.ckpt (or a FAN .weights.h5 saved by this project)")
    parser.add_argument("--landmarks-mean", required=True, type=Path, help="the authors' celeba_lm_mean.npz")
    parser.add_argument("--img-size", type=int, default=256, help="output size in pixels (square)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per FAN call")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _check_args(args) -> None:
    if not args.input.is_dir():
        raise AlignCommandError(f"--input {args.input} is not a folder.")
    source, target = args.input.resolve(), args.output.resolve()
    if target == source or source in target.parents or target in source.parents:
        raise AlignCommandError(f"--output {args.output} overlaps --input {args.input}: choose a folder outside "
                                "it, so that no input file can be overwritten.")
    if args.output.exists() and not args.output.is_dir():
        raise AlignCommandError(f"--output {args.output} is a file, not a folder.")
    if not args.fan_checkpoint.is_file():
        from stargan_keras.face.fan import WING_HINT

        raise AlignCommandError(f"--fan-checkpoint {args.fan_checkpoint} does not exist (or is not a file). "
                                f"{WING_HINT}")
    if args.img_size < MIN_SIZE:
        raise AlignCommandError(f"--img-size {args.img_size}: must be at least {MIN_SIZE}.")
    if args.batch_size < 1:
        raise AlignCommandError(f"--batch-size {args.batch_size}: must be at least 1.")


def _read(path: Path, size: int) -> np.ndarray:
    """An image file as uint8 [size, size, 3], resized as the authors' loader does (PIL bilinear)."""
    from PIL import Image

    from stargan_keras.core.imaging import open_rgb

    image = open_rgb(path)
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    return np.asarray(image)


def _summary(aligned: int, output: Path, kept: int, skipped: list[str]) -> str:
    parts = [f"aligned {aligned} images into {output}"]
    if kept:
        parts.append(f"kept {kept} already there")
    if skipped:
        named = ", ".join(skipped[:MAX_NAMED])
        more = f", ... and {len(skipped) - MAX_NAMED} more" if len(skipped) > MAX_NAMED else ""
        parts.append(f"skipped {len(skipped)} unreadable: {named}{more}")
    return "; ".join(parts)


@command
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _check_args(args)
    import keras

    from stargan_keras.data.folders import display_path, image_files
    from stargan_keras.face.alignment import FaceAligner, load_mean_landmarks
    from stargan_keras.face.fan import FanCheckpointError, fan_from_file
    from stargan_keras.core.imaging import ImageError, save_image

    mean_landmarks = load_mean_landmarks(args.landmarks_mean)
    files = image_files(args.input)
    if not files:
        raise AlignCommandError(f"--input {args.input} has no .jpg, .jpeg or .png files.")
    todo = [path for path in files if not (args.output / path.relative_to(args.input)).exists()]
    try:
        fan = fan_from_file(args.fan_checkpoint)
    except FanCheckpointError as err:
        raise AlignCommandError(f"--fan-checkpoint {err}") from None
    aligner = FaceAligner(fan, mean_landmarks, args.img_size)
    bar = None if args.quiet else keras.utils.Progbar(len(todo), unit_name="image")
    skipped, aligned, done = [], 0, 0
    for start in range(0, len(todo), args.batch_size):
        batch, images = [], []
        for path in todo[start:start + args.batch_size]:
            try:
                images.append(_read(path, args.img_size))
                batch.append(path)
            except ImageError:
                skipped.append(display_path(path))
        if images:
            for path, face in zip(batch, aligner.align(np.stack(images))):
                save_image(args.output / path.relative_to(args.input), face)
            aligned += len(images)
        done += len(todo[start:start + args.batch_size])
        if bar is not None:
            bar.update(done)
    print(_summary(aligned, args.output, len(files) - len(todo), skipped))
    return 0


if __name__ == "__main__":
    sys.exit(main())
