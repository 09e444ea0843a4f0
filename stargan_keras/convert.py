"""`python -m stargan_keras.convert`: turn the authors' PyTorch checkpoints into a stargan_keras model directory.

    python -m stargan_keras.convert --pytorch-checkpoint 100000_nets_ema.ckpt \\
        [--discriminator-checkpoint 100000_nets.ckpt] --config afhq --output DIR
    python -m stargan_keras.convert --pytorch-checkpoint 100000_nets_ema.ckpt --config celeba_hq \\
        --fan-checkpoint wing.ckpt --output DIR      (CelebA-HQ: the FAN behind the face masks travels along)
    python -m stargan_keras.convert --pytorch-checkpoint 200000-G.ckpt \\
        [--discriminator-checkpoint 200000-D.ckpt] --config v1_celeba --output DIR     (StarGAN v1)

The config's model_family picks the reader: StarGAN v2's `{step}_nets_ema.ckpt` /
`{step}_nets.ckpt` (`authors_checkpoints`), or StarGAN v1's `{step}-G.ckpt` /
`{step}-D.ckpt` (`v1.convert`).

Checkpoints are read with `torch.load(weights_only=True)`: a file that carries
code is refused, never run. Every tensor is checked against the architecture
the config describes before anything is written (see `authors_checkpoints`).
"""

from __future__ import annotations

import sys

from .authors_checkpoints import convert_checkpoint
from .config import ConfigArgumentParser, add_config_flags, load_config, overrides_from_args
from .errors import command
from .v1.convert import convert_checkpoint as convert_v1_checkpoint

MODEL_FLAGS = ("img_size", "num_domains", "w_hpf", "fan_checkpoint", "base_dim", "max_conv_dim", "style_dim",
               "latent_dim", "mapping_hidden_dim", "domain_names")
V1_MODEL_FLAGS = ("image_size", "c_dim", "c2_dim", "selected_attrs", "label_type", "g_conv_dim", "d_conv_dim",
                  "g_repeat_num", "d_repeat_num")


@command
def main(argv=None) -> int:
    parser = ConfigArgumentParser(prog="python -m stargan_keras.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pytorch-checkpoint", required=True, metavar="FILE",
                        help="v2: the authors' {step}_nets_ema.ckpt (generator, mapping network, style encoder); "
                             "v1: their {step}-G.ckpt")
    parser.add_argument("--discriminator-checkpoint", metavar="FILE",
                        help="v2: the authors' {step}_nets.ckpt, v1: their {step}-D.ckpt, to convert the "
                             "discriminator too (to fine-tune)")
    parser.add_argument("--config", required=True, metavar="NAME|FILE.yaml",
                        help="afhq, celeba_hq, v1_celeba or a YAML file describing the checkpoint's networks")
    parser.add_argument("--output", required=True, metavar="DIR", help="model directory to write")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a model directory at --output that also holds other files, moving the old "
                             "one aside whole (never a training run or a directory that is not a model's)")
    add_config_flags(parser, only=MODEL_FLAGS + V1_MODEL_FLAGS)
    args = parser.parse_args(argv)
    config = load_config(args.config).replace(**overrides_from_args(args))
    convert = convert_v1_checkpoint if config.model_family == "v1" else convert_checkpoint
    convert(args.pytorch_checkpoint, config, args.output, args.discriminator_checkpoint, overwrite=args.overwrite)
    return 0


if __name__ == "__main__":
    sys.exit(main())
