"""`python -m stargan_keras.convert`: turn the authors' PyTorch checkpoints into a stargan_keras model directory.

    python -m stargan_keras.convert --pytorch-checkpoint 100000_nets_ema.ckpt \\
        [--discriminator-checkpoint 100000_nets.ckpt] --config afhq --output DIR
    python -m stargan_keras.convert --pytorch-checkpoint 100000_nets_ema.ckpt --config celeba_hq \\
        --fan-checkpoint wing.ckpt --output DIR      (CelebA-HQ: the FAN behind the face masks travels along)
    python -m stargan_keras.convert --pytorch-checkpoint 200000-G.ckpt \\
        [--discriminator-checkpoint 200000-D.ckpt] --config v1_celeba --output DIR     (StarGAN v1)

The config's family picks the reader: StarGAN v2's `{step}_nets_ema.ckpt` /
`{step}_nets.ckpt` (`v2.convert`), or StarGAN v1's `{step}-G.ckpt` / `{step}-D.ckpt`
(`v1.convert`).

Checkpoints are read with `torch.load(weights_only=True)`: a file that carries
code is refused, never run. Every tensor is checked against the architecture
the config describes before anything is written.
"""

from __future__ import annotations

import sys

from stargan_keras import families
from stargan_keras.core.config import ConfigArgumentParser, add_config_flags, overrides_from_args
from stargan_keras.core.errors import command


@command
def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    family = families.get(families.of_command_line(argv))
    parser = ConfigArgumentParser(prog="python -m stargan_keras.convert", description=__doc__.split("\n\n")[0],
                                  unknown_flag_hint=families.other_family_flag(family.name))
    parser.add_argument("--pytorch-checkpoint", required=True, metavar="FILE",
                        help="v2: the authors' {step}_nets_ema.ckpt (generator, mapping network, style encoder); "
                             "v1: their {step}-G.ckpt")
    parser.add_argument("--discriminator-checkpoint", metavar="FILE",
                        help="v2: the authors' {step}_nets.ckpt, v1: their {step}-D.ckpt, to convert the "
                             "discriminator too (to fine-tune)")
    parser.add_argument("--config", required=True, metavar="NAME|FILE.yaml",
                        help="afhq, celeba_hq, v1_celeba or a YAML file describing the checkpoint's networks "
                             "(its family chooses the reader and the flags below)")
    parser.add_argument("--output", required=True, metavar="DIR", help="model directory to write")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a model directory at --output that also holds other files, moving the old "
                             "one aside whole (never a training run or a directory that is not a model's)")
    add_config_flags(parser, family.config_class, only=family.model_flags)
    args = parser.parse_args(argv)
    config = families.load_config(args.config)
    config = config.replace(**overrides_from_args(args, type(config)))
    families.of_config(config).convert(args.pytorch_checkpoint, config, args.output, args.discriminator_checkpoint,
                                       overwrite=args.overwrite)
    return 0


if __name__ == "__main__":
    sys.exit(main())
