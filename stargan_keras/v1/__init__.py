"""StarGAN v1 (Choi et al., "StarGAN: Unified Generative Adversarial Networks for Multi-Domain
Image-to-Image Translation", CVPR 2018) beside StarGAN v2, on the same infrastructure.

- `networks`: the label-conditioned generator and the PatchGAN discriminator with its
  classification head (the authors' yunjey/stargan `model.py`), NHWC.
- `losses`: the WGAN-GP, domain-classification and reconstruction terms (their `solver.py`).
- `trainer`: one training iteration per `train_step`, as the v2 trainer.
- `convert`: the authors' `{step}-G.ckpt` / `{step}-D.ckpt` state dicts into these networks.
- `labels`: CelebA's attribute file with the authors' split, and their test-time target labels.

The configuration is the `v1` section of `stargan_keras.config.Config` (`model_family: v1`).
"""
