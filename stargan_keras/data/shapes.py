"""The embedded default dataset: bold circles, squares and triangles drawn with NumPy.

Three domains (the shape). Each image also carries a within-domain *style* that a
reference image should pass on (fill colour, size, stripe pattern) and a
domain-invariant *content* that translation must keep (position, background shade).
All factors are drawn in units of the image size before rendering, so one seed gives
the same scenes at any `img_size`, and they are returned so that evaluation can check
what was kept and what was transferred. No files, no downloads: a few thousand 64 px
images take well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stargan_keras.data.domain_images import DomainImages, ImageSource

DOMAINS = ("circle", "square", "triangle")
PALETTE = np.array([
    (235, 50, 45),    # red
    (45, 205, 70),    # green
    (55, 105, 245),   # blue
    (245, 215, 40),   # yellow
    (225, 60, 220),   # magenta
    (40, 215, 225),   # cyan
], dtype=np.uint8)
STRIPES = ("solid", "horizontal", "vertical")
SPLITS = ("train", "val")

# Shapes are large so that a circle and a square of equal area still differ by whole pixels at
# 32 px (the default preset's size); the position range keeps the largest triangle's apex inside.
POSITION_RANGE = (0.40, 0.60)    # shape centre (centroid), fraction of the image side
SIZE_RANGE = (0.22, 0.30)        # circle radius, fraction of the image side
BACKGROUND_RANGE = (0.08, 0.45)  # grey level of the background, fraction of white
STRIPE_PERIOD = 0.125            # fraction of the image side
STRIPE_LIGHTEN = 0.6             # stripes are the fill colour mixed this much towards white
SQUARE_HALF_SIDE = 0.886         # x radius: the square has the circle's area
TRIANGLE_CIRCUMRADIUS = 1.3      # x radius: an equilateral triangle pointing up
_CHUNK = 512                     # images rendered at once (bounds the float32 temporaries)


@dataclass
class ShapesSplit:
    """One split: images uint8 [N, H, W, 3], labels int32 [N] (index into DOMAINS), factors.

    factors: `position` float32 [N, 2] (x, y of the centroid, fraction of the side),
    `background` float32 [N] (grey level in [0, 1]), `colour` int32 [N] (index into
    PALETTE), `size` float32 [N] (radius, fraction of the side), `stripes` int32 [N]
    (index into STRIPES).
    """

    images: np.ndarray
    labels: np.ndarray
    factors: dict[str, np.ndarray]


def sample_factors(labels: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draw every factor independently of the domain (so content and style are not domain cues)."""
    n = len(labels)
    return {
        "position": rng.uniform(*POSITION_RANGE, size=(n, 2)).astype(np.float32),
        "background": rng.uniform(*BACKGROUND_RANGE, size=n).astype(np.float32),
        "colour": rng.integers(0, len(PALETTE), size=n).astype(np.int32),
        "size": rng.uniform(*SIZE_RANGE, size=n).astype(np.float32),
        "stripes": rng.integers(0, len(STRIPES), size=n).astype(np.int32),
    }


def _signed_distance(domain: int, dx: np.ndarray, dy: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Pixels from the shape's outline (negative inside); dx, dy are offsets from the centroid."""
    if DOMAINS[domain] == "circle":
        return np.sqrt(dx * dx + dy * dy) - radius
    if DOMAINS[domain] == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) - SQUARE_HALF_SIDE * radius
    # Triangle pointing up: the bottom edge's outward normal is +y (image rows grow
    # downwards), the other two point up-left and up-right; the inradius is R / 2.
    circumradius = TRIANGLE_CIRCUMRADIUS * radius
    cos30 = np.float32(np.sqrt(3.0) / 2.0)
    edges = np.maximum(dy, np.maximum(cos30 * dx - 0.5 * dy, -cos30 * dx - 0.5 * dy))
    return edges - circumradius / 2.0


def render(labels: np.ndarray, factors: dict[str, np.ndarray], img_size: int) -> np.ndarray:
    """Draw the scenes described by (labels, factors) as uint8 [N, img_size, img_size, 3]."""
    n = len(labels)
    out = np.empty((n, img_size, img_size, 3), np.uint8)
    grid = (np.arange(img_size, dtype=np.float32) + 0.5)  # pixel centres
    palette = PALETTE.astype(np.float32)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        for domain in np.unique(labels[start:stop]):
            idx = start + np.flatnonzero(labels[start:stop] == domain)
            centre = factors["position"][idx] * img_size
            radius = (factors["size"][idx] * img_size)[:, None, None]
            dx = grid[None, None, :] - centre[:, 0, None, None]
            dy = grid[None, :, None] - centre[:, 1, None, None]
            # Coverage from the signed distance: a one-pixel ramp anti-aliases the outline.
            alpha = np.clip(0.5 - _signed_distance(int(domain), dx, dy, radius), 0.0, 1.0)

            half_period = STRIPE_PERIOD * img_size / 2.0
            pattern = factors["stripes"][idx][:, None, None]
            offset = np.where(pattern == STRIPES.index("horizontal"), dy, dx)
            # Parity of the stripe index; offsets span at most +-2 / STRIPE_PERIOD half-periods,
            # so this even shift makes every index positive and the int cast a floor.
            shift = 2.0 * np.ceil(2.0 / STRIPE_PERIOD)
            parity = (offset / half_period + shift).astype(np.int32) & 1
            striped = (pattern != STRIPES.index("solid")) & (parity == 1)

            # Per pixel: background + alpha * (colour - background) + alpha * striped * (light - colour),
            # as one batched product of [1, alpha, alpha * striped] with per-image colour rows.
            colour = palette[factors["colour"][idx]]
            light = colour + (255.0 - colour) * STRIPE_LIGHTEN
            background = np.repeat((factors["background"][idx] * 255.0)[:, None], 3, axis=1)
            rows = np.stack([background, colour - background, light - colour], axis=1)
            weights = np.stack([np.ones_like(alpha), alpha, alpha * striped], axis=-1)
            image = np.matmul(weights.reshape(len(idx), -1, 3), rows)
            out[idx] = np.round(image).astype(np.uint8).reshape(len(idx), img_size, img_size, 3)
    return out


def generate_shapes(num_per_domain: int, img_size: int = 64, seed: int = 0, split: str = "train") -> ShapesSplit:
    """`num_per_domain` scenes of each domain, domain-major; a pure function of its arguments.

    The splits draw from independent streams of one seed, so train and val never share scenes
    by construction of the generator (they could only coincide by chance).
    """
    if split not in SPLITS:
        raise ValueError(f"shapes split {split!r}: choose one of {', '.join(SPLITS)}.")
    if num_per_domain < 1:
        raise ValueError(f"shapes: num_per_domain {num_per_domain} must be at least 1.")
    rng = np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split)]))
    labels = np.repeat(np.arange(len(DOMAINS), dtype=np.int32), num_per_domain)
    factors = sample_factors(labels, rng)
    return ShapesSplit(render(labels, factors, img_size), labels, factors)


def shapes_domain_images(img_size: int, train_per_domain: int, val_per_domain: int, seed: int = 0) -> DomainImages:
    """Both splits as a DomainImages whose sources are in-memory arrays with their factors."""
    splits = {}
    for split, count in (("train", train_per_domain), ("val", val_per_domain)):
        data = generate_shapes(count, img_size, seed, split)
        splits[split] = [
            ImageSource(array=data.images[data.labels == d],
                        factors={k: v[data.labels == d] for k, v in data.factors.items()})
            for d in range(len(DOMAINS))
        ]
    return DomainImages(name="shapes", domain_names=list(DOMAINS), splits=splits)
