"""The translation object: the one place where a trained generator runs for inference.

A `Translator` holds a model's config and networks and answers the paper's two ways of
translating (Figure 1 and Section 2 of Choi et al., 2020):

    latent-guided     s = F(z, y)       (optionally truncated toward the domain's mean style)
    reference-guided  s = E(x_ref, y)
    synthesis         G(x, s)

`sample`, `evaluate`, the training sample grids and the serving module all call these
methods, so how G runs is decided here once: for example the CelebA-HQ generator
(w_hpf > 0) always gets the face masks of its source images (`Networks.face_masks`).

Data flow: a checkpoint or model directory -> `checkpoint.load_networks` -> (config,
networks) -> `Translator` -> images in [-1, 1]; the serving module (`serving.module`)
wraps the same methods with uint8 conversion and input checks.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import tensorflow as tf

from stargan_keras.v2.config import Config
from stargan_keras.face.masks import MASK_SIZE
from stargan_keras.core.layers import authors_resampling
from stargan_keras.v2.networks import Networks

MEAN_STYLE_SAMPLES = 10_000  # the authors' `Solver.sample`/`utils.translate_using_latent` average F over 10,000 z
SAMPLE_PSIS = (0.5, 0.7, 1.0)  # truncation values of the authors' latent-guided figures
MEAN_STYLE_BATCH = 1000


def truncate(styles, y, s_avg, psi):
    """Pull styles toward their domain's mean style: lerp(s_avg[y], s, psi) (the authors' `torch.lerp`).

    psi is a scalar or broadcasts against [N, 1]; where it is 1 the styles come back exactly.
    """
    psi = tf.cast(psi, styles.dtype)
    mean = tf.gather(s_avg, y)
    return tf.where(tf.equal(psi, 1.0), styles, mean + psi * (styles - mean))


class Translator:
    """Style codes, synthesis and the two translation shortcuts of one model, as traced TensorFlow functions.

    Images are float32 [N, S, S, 3] in [-1, 1] (use `imaging` at the edges), domains int32
    [N], z float32 [N, latent_dim], styles float32 [N, style_dim]. Each method is traced
    once whatever the batch size. `authors_ops=True` traces the networks with the
    authors' resampling ops instead of the folded convolutions (for TFLite files, see
    `layers.authors_resampling`).
    """

    def __init__(self, config: Config, networks: Networks, *, mean_style_samples: int = MEAN_STYLE_SAMPLES,
                 mean_style_seed: int = 0, mean_styles=None, authors_ops: bool = False):
        self.config, self.networks = config, networks
        self.mean_style_samples, self.mean_style_seed = mean_style_samples, mean_style_seed
        self.authors_ops = authors_ops
        self._mean_styles = mean_styles if mean_styles is None or isinstance(mean_styles, tf.Variable) else \
            tf.constant(mean_styles, tf.float32)
        cfg = config.model
        images = tf.TensorSpec([None, cfg.img_size, cfg.img_size, 3], tf.float32)
        domains = tf.TensorSpec([None], tf.int32)
        latents = tf.TensorSpec([None, cfg.latent_dim], tf.float32)
        styles = tf.TensorSpec([None, cfg.style_dim], tf.float32)
        style_sets = tf.TensorSpec([None, None, cfg.style_dim], tf.float32)
        self._map = self._trace(lambda z, y: tf.cast(networks.mapping_network(z, y), tf.float32), [latents, domains])
        self._encode = self._trace(lambda x, y: tf.cast(networks.style_encoder(x, y), tf.float32), [images, domains])
        self._generate = self._trace(lambda x, s: tf.cast(networks.generator(x, s, networks.face_masks(x)),
                                                          tf.float32), [images, styles])
        self._generate_each = self._trace(lambda x, s: _each_style(networks.generator, x, s, networks.face_masks(x)),
                                          [images, style_sets])
        if cfg.w_hpf > 0:
            masks = tf.TensorSpec([None, MASK_SIZE, MASK_SIZE, 1], tf.float32)
            self._face_masks = self._trace(networks.face_masks, [images])
            self._generate_masked = self._trace(
                lambda x, s, m1, m2: tf.cast(networks.generator(x, s, (m1, m2)), tf.float32),
                [images, styles, masks, masks])
            self._generate_each_masked = self._trace(
                lambda x, s, m1, m2: _each_style(networks.generator, x, s, (m1, m2)),
                [images, style_sets, masks, masks])

    def _trace(self, fn, signature):
        """`fn` traced once for `signature`. A partial, not a closure: TensorFlow counts the traces of functions
        sharing one code object together, and would warn of retracing once a process has traced a few of them."""
        return tf.function(functools.partial(self._call, fn), input_signature=signature, autograph=False)

    def _call(self, fn, *args):
        if not self.authors_ops:
            return fn(*args)
        with authors_resampling():
            return fn(*args)

    @classmethod
    def from_directory(cls, path: str | Path, **kwargs) -> "Translator":
        """A model directory, or a run directory's latest EMA networks."""
        from stargan_keras.v2.networks import open_directory

        return cls(*open_directory(path), **kwargs)

    def with_authors_ops(self) -> "Translator":
        """The same model and mean styles, traced with the authors' resampling ops."""
        return Translator(self.config, self.networks, mean_styles=self.mean_styles(), authors_ops=True)

    # -- the networks, for users who want them directly -------------------------------------------------------
    @property
    def generator(self):
        return self.networks.generator

    @property
    def mapping_network(self):
        return self.networks.mapping_network

    @property
    def style_encoder(self):
        return self.networks.style_encoder

    @property
    def discriminator(self):
        return self.networks.discriminator

    # -- style codes ---------------------------------------------------------------------------------------------
    def mean_styles(self) -> tf.Tensor:
        """[num_domains, style_dim]: the mean of F(z, d) over `mean_style_samples` z, the centre of truncation.

        Computed on first use and kept (call it eagerly before tracing a function that truncates);
        `update_mean_styles` recomputes it after the weights change. Given as a tf.Variable to the
        constructor, it stays that variable (the serving module saves it).
        """
        if self._mean_styles is None:
            self.update_mean_styles()
        return self._mean_styles

    def update_mean_styles(self) -> tf.Tensor:
        cfg = self.config.model
        n = self.mean_style_samples
        z = tf.random.stateless_normal((n, cfg.latent_dim), seed=[self.mean_style_seed, 0])
        means = []
        for domain in range(cfg.num_domains):
            total = 0.0
            for start in range(0, n, MEAN_STYLE_BATCH):
                chunk = z[start:start + MEAN_STYLE_BATCH]
                total += tf.reduce_sum(self._map(chunk, tf.fill([tf.shape(chunk)[0]], domain)), axis=0)
            means.append(total / n)
        if isinstance(self._mean_styles, tf.Variable):
            self._mean_styles.assign(tf.stack(means))
        else:
            self._mean_styles = tf.stack(means)
        return self._mean_styles

    def style_from_latent(self, z, y, psi=None):
        """F(z, y); with psi (a scalar or one per code) truncated toward the domain's mean style.

        psi None or the number 1 skips the truncation and its mean styles.
        """
        z, y = _floats(z), _domains(y)
        styles = self._map(z, y)
        if psi is None or (np.ndim(psi) == 0 and not tf.is_tensor(psi) and float(psi) == 1.0):
            return styles
        psi = tf.reshape(tf.cast(psi, tf.float32), [-1, 1])
        return truncate(styles, y, self.mean_styles(), psi)

    def style_from_reference(self, x_ref, y_ref):
        """E(x_ref, y_ref)."""
        return self._encode(_floats(x_ref), _domains(y_ref))

    # -- synthesis -------------------------------------------------------------------------------------------------
    def face_masks(self, x):
        """The face masks G takes for images x (None for a generator without high-pass skips): pass them to
        `synthesize` and the guided methods when the same x is translated many times, so that the FAN, which
        costs more than G at small sizes, runs once per image."""
        if self.config.model.w_hpf <= 0:
            return None
        return self._face_masks(_floats(x))

    def synthesize(self, x, s, masks=None):
        """G(x, s): images in [-1, 1] (not clipped: use `imaging.to_uint8` to quantize).

        A generator with high-pass skips (w_hpf > 0) gets the face masks of x, as at the authors' test time:
        `masks`, from `face_masks(x)`, or computed here.
        """
        if masks is None or self.config.model.w_hpf <= 0:
            return self._generate(_floats(x), _floats(s))
        return self._generate_masked(_floats(x), _floats(s), *masks)

    def synthesize_each(self, x, styles, masks=None):
        """[K, N, S, S, 3]: G(x, styles[k]) for each of K style batches `styles` [K, N, style_dim], G's
        style-free half (`Generator.encode_content`) run once for all K, as training does; `masks` as in
        `synthesize`. The same images as K calls of `synthesize`, within float rounding."""
        if masks is None or self.config.model.w_hpf <= 0:
            return self._generate_each(_floats(x), _floats(styles))
        return self._generate_each_masked(_floats(x), _floats(styles), *masks)

    def latent_guided(self, x, y_trg, z, psi=None, masks=None):
        """G(x, F(z, y_trg)), truncated by psi when given; `masks` as in `synthesize`."""
        return self.synthesize(x, self.style_from_latent(z, y_trg, psi), masks)

    def reference_guided(self, x, x_ref, y_ref, masks=None):
        """G(x, E(x_ref, y_ref)): x in the style of the reference, in the reference's domain; `masks` as in
        `synthesize`."""
        return self.synthesize(x, self.style_from_reference(x_ref, y_ref), masks)


def _each_style(generator, x, styles, masks):
    """G's content of x once, then its styled half for each style batch (a loop in the graph, one batch live)."""
    content = generator.encode_content(x, masks)
    return tf.map_fn(lambda s: tf.cast(generator.decode_content(content, s, masks), tf.float32), styles,
                     fn_output_signature=tf.float32)


def _floats(value):
    return tf.cast(value, tf.float32)


def _domains(value):
    return tf.cast(value, tf.int32)
