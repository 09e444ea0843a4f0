"""StarGAN v1 (Choi et al., "StarGAN: Unified Generative Adversarial Networks for Multi-Domain
Image-to-Image Translation", CVPR 2018) beside StarGAN v2, on the same infrastructure.

- `networks`: the label-conditioned generator and the PatchGAN discriminator with its
  classification head (the authors' yunjey/stargan `model.py`), NHWC.
- `losses`: the WGAN-GP, domain-classification and reconstruction terms (their `solver.py`).
- `trainer`: one training iteration per `train_step`, as the v2 trainer.
- `convert`: the authors' `{step}-G.ckpt` / `{step}-D.ckpt` state dicts into these networks.
- `inference`: `Translator`, G(x, c) of a model directory or run (what `stargan_keras.load` gives for a
  v1 model, and what `serving.Serving` exports).
- `labels`: CelebA's attribute file with the authors' split, and their test-time target labels.
- `data`: labelled images (CelebA, class folders such as RaFD, both jointly, the embedded
  shapes) and their tf.data pipelines, batch k a pure function of (seed, step).
- `family`: the registry's object for v1: what the commands and `core.session` ask of the family.
- `figures`: the authors' translation figure and label-interpolation strips.
- `evaluation`: target-attribute accuracy of translations (the paper's classification
  protocol) and FID, for `python -m stargan_keras.evaluate`.

- `config`: `Config`, with the `model`, `data` and `train` sections of the paper's settings
  (`model_family: v1` in YAML).
"""
