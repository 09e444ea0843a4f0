"""StarGAN v1 (Choi et al., "StarGAN: Unified Generative Adversarial Networks for Multi-Domain
Image-to-Image Translation", CVPR 2018) beside StarGAN v2, on the same infrastructure.

- `networks`: the label-conditioned generator and the PatchGAN discriminator with its
  classification head (the authors' yunjey/stargan `model.py`), NHWC.
- `losses`: the WGAN-GP, domain-classification and reconstruction terms (their `solver.py`).
- `trainer`: one training iteration per `train_step`, as the v2 trainer.
- `convert`: the authors' `{step}-G.ckpt` / `{step}-D.ckpt` state dicts into these networks.
- `inference`: `V1Translator`, G(x, c) of a model directory or run (what `stargan_keras.load` gives for a
  v1 model, and what the serving module `serving.module.V1Serving` exports).
- `labels`: CelebA's attribute file with the authors' split, and their test-time target labels.
- `data`: labelled images (CelebA, class folders such as RaFD, both jointly, the embedded
  shapes) and their tf.data pipelines, batch k a pure function of (seed, step).
- `training`: the family hooks through which `stargan_keras.core.session` runs a v1 session.
- `sampling`: the authors' translation figure and label-interpolation strips.
- `evaluation`: target-attribute accuracy of translations (the paper's classification
  protocol) and FID, for `python -m stargan_keras.evaluate`.

The configuration is the `v1` section of `stargan_keras.core.config.Config` (`model_family: v1`).
"""
