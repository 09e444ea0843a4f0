"""Faces as the StarGAN v2 authors handle CelebA-HQ (clovaai/stargan-v2 `core/wing.py`).

- `fan`: the face-landmark network (FAN) in Keras, converted from the authors' `wing.ckpt`.
- `masks`: the two face masks G takes when `w_hpf > 0` (`get_heatmap` + `preprocess`).
- `alignment`: the authors' face alignment (`python -m stargan_keras.align`).
"""
