"""StarGAN v2 (Choi et al., "StarGAN v2: Diverse Image Synthesis for Multiple Domains", CVPR 2020).

- `config`: `Config`, the networks' sizes, the data and the paper's training settings.
- `layers`, `networks`: the four networks of the paper's Figure 2 (the authors' `core/model.py`).
- `losses`: one pure function per term of the paper's objective.
- `trainer`: `StarGANv2`, one training iteration per `train_step`, as the authors' `core/solver.py`.
- `inference`: `Translator`, the one place G runs outside training.
- `figures`: the sample grids and videos; `evaluation`: the paper's FID/LPIPS protocol.
- `convert`, `warm_start`: the authors' checkpoints, converted or continued.
- `serving`: the exported module of the v2 serving table.
- `family`: the registry's object for v2: what the commands and `core.session` ask of the family.
"""
