"""The two face masks StarGAN v2's G takes when `w_hpf > 0`: the authors' `get_heatmap` and `preprocess`.

clovaai/stargan-v2 `core/wing.py`: the FAN's 98 landmark heatmaps of the image (resized to
256 px) are upsampled to 256 px, cut below 0.1, min-max normalised per channel, moved and
sharpened per face part (eyes, nose, lips, eyebrows, chin), and summed: mask 1 over every
part G uses at 32 px, mask 2 without chin, lips and eyebrows for 64 and 128 px.

Pure TensorFlow ops, no gradient: usable in training steps, `tf.function`, SavedModels and
TFLite's builtin op set (row shifts are slices and a concat, resizes name torch's
align_corners convention explicitly).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from stargan_keras.face.fan import HEATMAP_SIZE, INPUT_SIZE, NUM_LANDMARKS

MASK_SIZE = INPUT_SIZE  # get_heatmap brings every image to 256 px, so the masks are 256 px too
HEATMAP_CUT = 0.1  # core/wing.py `truncate`
NORMALIZE_EPS = 1e-6  # core/wing.py `normalize`

# The face parts of core/wing.py `preprocess` at 256 px, as the landmark channels [start, end) they end with,
# from its `index_map` and `operations` (then the zeroed channels, the nose and the eye steps). Each part is a sum
# of terms (row shift, power): a term takes every channel, shifts it by `row shift` rows (output row i = input
# row i + shift, wrapping around, so positive moves the content up) and raises it to `power`. Channels in no part
# are zeroed: 0-7 and 25-32 (outside the chin), 33 and 46 (eyebrow edges), 76 and 82 (lip edges).
# Mask 2 sums the parts marked True; mask 1 sums all of them.
FACE_PARTS = {
    #                 start end  terms                 in mask 2
    "chin":           (8,   25, ((0, 3),),             False),
    "eyebrow left":   (34,  46, ((-7, 2),),            False),
    "eyebrow right":  (47,  51, ((-7, 2),),            False),
    "nose top":       (51,  52, ((0, 1),),             True),
    "nose":           (52,  55, ((4, 1),),             True),
    "nostrils":       (55,  60, ((8, 4),),             True),
    "eyes":           (60,  76, ((-8, 3), (-24, 1)),   True),
    "lip upper":      (77,  82, ((-8, 4),),            False),
    "lip lower":      (83,  88, ((8, 4),),             False),
    "lip inner":      (88,  96, ((-2, 3),),            False),
    "pupils":         (96,  98, ((0, 1),),             True),
}


def _resize_bilinear(x, size: int, align_corners: bool):
    """torch's F.interpolate(mode='bilinear', align_corners=...) without antialiasing."""
    return tf.raw_ops.ResizeBilinear(images=x, size=[size, size], align_corners=align_corners,
                                     half_pixel_centers=not align_corners)


def shift_rows(x, shift: int):
    """Output row i = input row (i + shift) mod H: core/wing.py `shift`, as slices and a concat."""
    start = shift % x.shape[1]
    if start == 0:
        return x
    return tf.concat([x[:, start:], x[:, :start]], axis=1)


def heatmaps(fan: keras.Model, x):
    """x [N,H,W,3] in [-1,1] (any H, W) -> the FAN's 98 landmark heatmaps [N,64,64,98] of x resized to 256 px."""
    x = _resize_bilinear(tf.cast(tf.stop_gradient(x), tf.float32), INPUT_SIZE, align_corners=False)
    return tf.stop_gradient(fan(x * 0.5 + 0.5, training=False)[..., :NUM_LANDMARKS])


def masks_from_heatmaps(heat):
    """[N,64,64,98] landmark heatmaps -> (mask 1, mask 2), each [N,256,256,1] in [0,1] (core/wing.py `preprocess`)."""
    if heat.shape[1] != HEATMAP_SIZE:
        raise ValueError(f"expected {HEATMAP_SIZE} px heatmaps, got {heat.shape[1]} px")
    heat = _resize_bilinear(heat, MASK_SIZE, align_corners=True)
    heat = tf.where(heat < HEATMAP_CUT, tf.zeros_like(heat), heat)
    low = tf.reduce_min(heat, axis=[1, 2], keepdims=True)
    high = tf.reduce_max(heat, axis=[1, 2], keepdims=True)
    heat = (heat - low) / (high - low + NORMALIZE_EPS)
    first, second = [], []
    for start, end, terms, in_second in FACE_PARTS.values():
        part = heat[..., start:end]
        # Shifting rows commutes with powers and with the sum over channels: sum the channels first.
        summed = [shift_rows(tf.reduce_sum(part if power == 1 else tf.pow(part, float(power)), -1, keepdims=True),
                             shift) for shift, power in terms]
        first += summed
        if in_second:
            second += summed
    return tf.clip_by_value(tf.add_n(first), 0.0, 1.0), tf.clip_by_value(tf.add_n(second), 0.0, 1.0)


def face_masks(fan: keras.Model, x):
    """The authors' `fan.get_heatmap(x)`: x [N,H,W,3] in [-1,1] -> (mask 1, mask 2), [N,256,256,1] float32 each.

    G resizes them itself (bilinear) to the 32, 64 and 128 px of its high-pass skips.
    """
    first, second = masks_from_heatmaps(heatmaps(fan, x))
    return tf.stop_gradient(first), tf.stop_gradient(second)
