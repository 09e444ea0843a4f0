"""The StarGAN v2 authors' face alignment (clovaai/stargan-v2 `core/wing.py`, `main.py --mode align`).

Faces are brought to the pose of CelebA-HQ before translation: the FAN's landmarks (argmax
with a quarter-pixel refinement), the image mirror-padded by half its size on each side and
blended into a blurred copy towards the edges, a similarity transform (rotation from the
eyes-mouth axis, scale from the eye centres and mouth corners, translation by the landmark
means) onto the mean CelebA-HQ landmarks, a Lanczos warp, and the top-left output crop.

The authors use OpenCV for the resizes and the warp and scikit-image for the blur; this
module computes the same operations with NumPy and SciPy: bilinear resizes with OpenCV's
pixel-centre convention, `scipy.ndimage.gaussian_filter` (what scikit-image calls), and
OpenCV's INTER_LANCZOS4 warp (8x8 taps, source positions rounded to 1/32 pixel, zeros
outside). PIL has no Lanczos filter for affine transforms.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from stargan_keras.core.errors import UserError
from stargan_keras.core.imaging import from_uint8

from stargan_keras.face.fan import HEATMAP_SIZE, NUM_LANDMARKS

REFERENCE_SIZE = 256  # the mean landmarks are given at 256 px
# Published with dl=0 in the authors' download.sh (`bash download.sh wing`); dl=1 serves the file itself.
LANDMARKS_MEAN_URL = "https://www.dropbox.com/s/91fth49gyb7xksk/celeba_lm_mean.npz?dl=1"
# Landmark indices of the 98-point (WFLW) layout used by core/wing.py.
LEFT_EYE = (*range(60, 68), 96)  # eye contour and pupil
RIGHT_EYE = (*range(68, 76), 97)
MOUTH_CORNERS = (76, 82)
SCALE_LANDMARKS = (96, 97, 76, 82)  # pupils and mouth corners: their spread sets the scale
LANCZOS_TAPS = 8
SUBPIXEL_STEPS = 32  # OpenCV's INTER_TAB_SIZE: warp positions are rounded to 1/32 pixel
WARP_CHUNK = 2**16  # output pixels warped at a time, to bound memory


class AlignmentError(UserError, ValueError):
    """A mean-landmarks file or image that alignment cannot use; the message names it."""


def load_mean_landmarks(path: str | Path) -> np.ndarray:
    """The authors' `celeba_lm_mean.npz` (key 'mean'): [98, 2] (x, y) landmarks of a 256 px face, float32."""
    path = Path(path)
    hint = f"Use the authors' celeba_lm_mean.npz: {LANDMARKS_MEAN_URL} (their download.sh `wing`)."
    if not path.is_file():
        raise AlignmentError(f"--landmarks-mean {path} does not exist (or is not a file). {hint}")
    try:
        with np.load(path, allow_pickle=False) as data:
            mean = data["mean"] if "mean" in data.files else None
    except (OSError, ValueError) as err:
        raise AlignmentError(f"--landmarks-mean {path} is not a NumPy .npz file ({err}). {hint}") from None
    if mean is None or mean.shape != (NUM_LANDMARKS, 2):
        found = "no 'mean' array" if mean is None else f"'mean' of shape {mean.shape}"
        raise AlignmentError(f"--landmarks-mean {path} has {found}, expected [{NUM_LANDMARKS}, 2]. {hint}")
    return mean.astype(np.float32)


def landmarks_from_heatmaps(heat: np.ndarray) -> np.ndarray:
    """[N,h,w,98] heatmaps -> [N,98,2] (x, y) in heatmap pixels (core/wing.py `get_preds_fromhm`).

    Each landmark is its heatmap's argmax, moved a quarter pixel towards the larger neighbour
    along x and along y (away from the border), at the pixel's centre.
    """
    heat = np.moveaxis(np.asarray(heat, np.float32), -1, 1)  # [N, 98, h, w]
    n, c, height, width = heat.shape
    flat = heat.reshape(n, c, -1).argmax(-1)
    rows, cols = flat // width, flat % width
    inside = (rows > 0) & (rows < height - 1) & (cols > 0) & (cols < width - 1)
    r, k = np.clip(rows, 1, height - 2), np.clip(cols, 1, width - 2)
    batch, channel = np.arange(n)[:, None], np.arange(c)[None, :]
    dx = heat[batch, channel, r, k + 1] - heat[batch, channel, r, k - 1]
    dy = heat[batch, channel, r + 1, k] - heat[batch, channel, r - 1, k]
    x = cols + 0.5 + np.where(inside, 0.25 * np.sign(dx), 0.0)
    y = rows + 0.5 + np.where(inside, 0.25 * np.sign(dy), 0.0)
    return np.stack([x, y], -1).astype(np.float32)


def resize_linear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """OpenCV's INTER_LINEAR resize (pixel centres aligned, edges repeated); uint8 in, rounded uint8 out."""
    src_h, src_w = image.shape[:2]

    def taps(size, src_size):
        pos = np.clip((np.arange(size) + 0.5) * (src_size / size) - 0.5, 0, src_size - 1)
        low = np.floor(pos).astype(int)
        return low, np.minimum(low + 1, src_size - 1), pos - low

    y0, y1, fy = taps(height, src_h)
    x0, x1, fx = taps(width, src_w)
    data = image.astype(np.float64)
    rows = data[y0] * (1 - fy)[:, None, None] + data[y1] * fy[:, None, None]
    out = rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]
    return np.floor(out + 0.5).astype(np.uint8) if image.dtype == np.uint8 else out


def mirror_pad(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """core/wing.py `pad_mirror`: reflect-pad by half the size, fading into a blurred copy towards the edges.

    image: uint8 [H, W, 3]; returns float64 [2H, 2W, 3] in [0, 255] and the landmarks moved with it.
    """
    height, width = image.shape[:2]
    padded = np.pad(image, ((height // 2, height // 2), (width // 2, width // 2), (0, 0)), mode="reflect")
    small = resize_linear(padded, height, width).astype(np.float64) / 255.0
    sigma = height // 100
    small = ndimage.gaussian_filter(small, (sigma, sigma, 0), mode="nearest", truncate=4.0)
    out_h, out_w = padded.shape[:2]
    blurred = resize_linear(small, out_h, out_w) * 255.0
    ramp = out_h // 4  # the authors use the padded height for both directions
    weight_y = np.clip(np.arange(out_h) / ramp, 0, 1)
    weight_x = np.clip(np.arange(out_w) / ramp, 0, 1)
    weight_y = np.minimum(weight_y, weight_y[::-1])[:, None]
    weight_x = np.minimum(weight_x, weight_x[::-1])[None, :]
    weight = (np.minimum(weight_y, weight_x) ** 4)[..., None]
    blended = padded * weight + blurred * (1 - weight)
    return blended, np.asarray(landmarks, np.float64) + np.array([out_w // 4, out_h // 4])


def _eyes_mouth_axis(landmarks: np.ndarray) -> np.ndarray:
    """The face's unit x axis: eye-to-eye direction averaged with the normal of the eyes-to-mouth direction."""
    left, right = landmarks[list(LEFT_EYE)].mean(0), landmarks[list(RIGHT_EYE)].mean(0)
    mouth = landmarks[list(MOUTH_CORNERS)].mean(0)
    across = right - left
    down = (left + right) / 2 - mouth
    axis = across - np.array([down[1], -down[0]])
    return axis / np.linalg.norm(axis)


def _translation(offset) -> np.ndarray:
    matrix = np.eye(3)
    matrix[:2, 2] = offset
    return matrix


def similarity_transform(landmarks: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The 3x3 matrix taking `landmarks` onto `reference` (core/wing.py `FaceAligner.landmarks2mat`).

    Centre the landmarks, rotate their eyes-mouth axis onto the reference's, scale by the mean
    ratio of distances from the centroid of the pupils and mouth corners, move to the
    reference's centroid.
    """
    landmarks, reference = np.asarray(landmarks, np.float64), np.asarray(reference, np.float64)
    source_axis, target_axis = _eyes_mouth_axis(landmarks), _eyes_mouth_axis(reference)
    cos = float(source_axis @ target_axis)
    sin = float(source_axis[0] * target_axis[1] - source_axis[1] * target_axis[0])
    rotation = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
    spread = [np.linalg.norm(points - points.mean(0), axis=1)[list(SCALE_LANDMARKS)]
              for points in (landmarks, reference)]
    scale = np.diag([np.mean(spread[1] / spread[0])] * 2 + [1.0])
    return _translation(reference.mean(0)) @ scale @ rotation @ _translation(-landmarks.mean(0))


def _lanczos4_weights(fraction: np.ndarray) -> np.ndarray:
    """[P] offsets in [0, 1) -> [P, 8] normalised Lanczos (a = 4) weights of the taps at -3..+4."""
    distance = fraction[:, None] + 3 - np.arange(LANCZOS_TAPS)[None, :]
    weights = np.sinc(distance) * np.sinc(distance / 4)
    return weights / weights.sum(1, keepdims=True)


def warp_lanczos(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The top-left size x size pixels of OpenCV's warpPerspective(image, matrix, INTER_LANCZOS4), zeros outside.

    Output pixel (x, y) samples the image at matrix^-1 (x, y, 1); float64 [size, size, C] out.
    """
    inverse = np.linalg.inv(matrix)
    margin = LANCZOS_TAPS
    source = np.pad(np.asarray(image, np.float64), ((margin, margin), (margin, margin), (0, 0)))
    limit_y, limit_x = source.shape[0] - 1, source.shape[1] - 1
    ys, xs = np.mgrid[0:size, 0:size]
    points = np.stack([xs.ravel(), ys.ravel(), np.ones(size * size)])
    out = np.empty((size * size, source.shape[2]))
    for start in range(0, size * size, WARP_CHUNK):
        chunk = inverse @ points[:, start:start + WARP_CHUNK]
        fixed = np.rint(chunk[:2] / chunk[2] * SUBPIXEL_STEPS).astype(np.int64)
        whole, fraction = np.divmod(fixed, SUBPIXEL_STEPS)
        fraction = fraction / SUBPIXEL_STEPS
        offsets = np.arange(LANCZOS_TAPS) - 3 + margin
        cols = np.clip(whole[0][:, None] + offsets, 0, limit_x)
        rows = np.clip(whole[1][:, None] + offsets, 0, limit_y)
        weight_x, weight_y = _lanczos4_weights(fraction[0]), _lanczos4_weights(fraction[1])
        acc = 0.0
        for tap in range(LANCZOS_TAPS):
            line = source[rows[:, tap:tap + 1], cols]  # [P, 8, C]
            acc = acc + weight_y[:, tap, None] * np.einsum("pk,pkc->pc", weight_x, line)
        out[start:start + WARP_CHUNK] = acc
    return out.reshape(size, size, -1)


def reference_landmarks(mean_landmarks: np.ndarray, size: int) -> np.ndarray:
    """The mean landmarks scaled from 256 px to `size` px (the authors' `size // 256`, equal for multiples of 256)."""
    return np.asarray(mean_landmarks, np.float64) * (size / REFERENCE_SIZE)


def align_face(image: np.ndarray, landmarks: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """uint8 [S, S, 3] image with its landmarks -> the aligned uint8 [S, S, 3] face (core/wing.py `align`)."""
    size = image.shape[0]
    padded, moved = mirror_pad(image, landmarks)
    aligned = warp_lanczos(padded, similarity_transform(moved, reference), size)
    return np.floor(np.clip(aligned, 0, 255) + 0.5).astype(np.uint8)


class FaceAligner:
    """The authors' `FaceAligner`: FAN landmarks of a batch of faces, then `align_face` on each.

    The FAN sees each image resized to 256 px, as in training; its 64 px landmarks are scaled
    to the image (the authors' integer `size // 64`, equal for multiples of 64).
    """

    def __init__(self, fan, mean_landmarks: np.ndarray, size: int):
        import tensorflow as tf

        from stargan_keras.face.masks import heatmaps

        self.size = size
        self.reference = reference_landmarks(mean_landmarks, size)
        self._heatmaps = tf.function(lambda x: heatmaps(fan, x), reduce_retracing=True)

    def landmarks(self, images: np.ndarray) -> np.ndarray:
        """[N,S,S,3] uint8 faces -> [N,98,2] (x, y) landmarks in image pixels."""
        heat = self._heatmaps(from_uint8(images))
        return landmarks_from_heatmaps(np.asarray(heat)) * (images.shape[1] / HEATMAP_SIZE)

    def align(self, images: np.ndarray) -> np.ndarray:
        """[N,S,S,3] uint8 faces (S = the aligner's size) -> [N,S,S,3] uint8 aligned faces."""
        if images.shape[1:3] != (self.size, self.size):
            raise ValueError(f"expected {self.size} x {self.size} images, got {images.shape[1:3]}")
        return np.stack([align_face(image, points, self.reference)
                         for image, points in zip(images, self.landmarks(images))])
