"""Style codes for translation: latent-guided (F, with truncation) and reference-guided (E)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

MEAN_STYLE_SAMPLES = 10_000  # REFERENCE.md: s_avg[y] is the mean of F over 10,000 z


def mean_styles(mapping_network, num_domains: int, latent_dim: int, n: int = MEAN_STYLE_SAMPLES, seed: int = 0,
                batch_size: int = 1000) -> np.ndarray:
    """The mean style of each domain, [num_domains, style_dim]: the centre of the truncation trick."""
    z = tf.random.stateless_normal((n, latent_dim), seed=[seed, 0])
    means = []
    for domain in range(num_domains):
        total = 0.0
        for start in range(0, n, batch_size):
            chunk = z[start:start + batch_size]
            y = tf.fill([tf.shape(chunk)[0]], domain)
            total += tf.reduce_sum(mapping_network(chunk, y), axis=0)
        means.append(total / n)
    return tf.stack(means).numpy()


def truncate(styles, y, s_avg, psi: float):
    """Pull styles toward their domain's mean: lerp(s_avg[y], s, psi); psi = 1 leaves them unchanged."""
    return tf.gather(s_avg, y) + psi * (styles - tf.gather(s_avg, y))


def latent_styles(mapping_network, z, y, psi: float = 1.0, s_avg=None):
    styles = mapping_network(z, y)
    if psi != 1.0:
        if s_avg is None:
            raise ValueError("psi != 1 needs the per-domain mean styles (s_avg); compute them with mean_styles().")
        styles = truncate(styles, y, s_avg, psi)
    return styles


def reference_styles(style_encoder, x_ref, y_ref):
    return style_encoder(x_ref, y_ref)
