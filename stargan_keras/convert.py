"""`python -m stargan_keras.convert`: turn the authors' PyTorch checkpoints into a stargan_keras model directory.

    python -m stargan_keras.convert --pytorch-checkpoint 100000_nets_ema.ckpt \\
        [--discriminator-checkpoint 100000_nets.ckpt] --config afhq --output DIR

Checkpoints are read with `torch.load(weights_only=True)`: a file that carries
code is refused, never run. Every tensor is checked against the architecture
the config describes before anything is written (see `authors_checkpoints`).
"""

from __future__ import annotations

import sys

from .authors_checkpoints import convert_checkpoint
from .config import ConfigArgumentParser, add_config_flags, load_config, overrides_from_args
from .errors import command

MODEL_FLAGS = ("img_size", "num_domains", "w_hpf", "base_dim", "max_conv_dim", "style_dim", "latent_dim",
               "mapping_hidden_dim", "domain_names")


@command
def main(argv=None) -> int:
    parser = ConfigArgumentParser(prog="python -m stargan_keras.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pytorch-checkpoint", required=True, metavar="FILE",
                        help="the authors' {step}_nets_ema.ckpt (generator, mapping network, style encoder)")
    parser.add_argument("--discriminator-checkpoint", metavar="FILE",
                        help="the authors' {step}_nets.ckpt, to convert the discriminator too (to fine-tune)")
    parser.add_argument("--config", required=True, metavar="NAME|FILE.yaml",
                        help="afhq, celeba_hq or a YAML file describing the checkpoint's networks")
    parser.add_argument("--output", required=True, metavar="DIR", help="model directory to write")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --output even if it is a non-empty directory that is not a model directory")
    add_config_flags(parser, only=MODEL_FLAGS)
    args = parser.parse_args(argv)
    config = load_config(args.config).replace(**overrides_from_args(args))
    convert_checkpoint(args.pytorch_checkpoint, config, args.output, args.discriminator_checkpoint,
                       overwrite=args.overwrite)
    return 0


if __name__ == "__main__":
    sys.exit(main())
