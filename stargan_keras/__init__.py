"""StarGAN v2 (Choi et al., CVPR 2020) in TensorFlow 2 / Keras 3."""
