"""The paper's figures and videos of a model, from folders of images (the `sample` command's library).

Grids, as uint8 arrays, after the authors' clovaai/stargan-v2 `core/utils.py`:
- reference (`translate_using_reference`): first row the references, first column the
  sources, each cell G(source, E(reference));
- latent (`translate_using_latent`): first row the sources, then one row per (domain, z) of
  G(source, F(z, domain) truncated toward the domain's mean style);
- cycle (`translate_and_reconstruct`): rows source, reference, translation, reconstruction
  G(translation, E(source)).
Videos (`video_ref`, `video_latent`) move the style from one reference (or latent code) to
the next of the same domain with sigmoid-spaced steps. Every image goes through an
`inference.Translator`.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import tensorflow as tf

from stargan_keras.core.callbacks import PeriodicSamples
from stargan_keras.core.config import ConfigError
from stargan_keras.core.imaging import make_grid
from stargan_keras.v2.inference import SAMPLE_PSIS, Translator

VIDEO_FPS = 12.5  # the authors' 25 fps raw video played at half speed (setpts=2*PTS)
TAIL_FRAMES = 10  # the last frame is held this long at the end of a video
SLIDE_MARGIN = 32  # blank columns between the sliding references and the sources (at 256 px)
BATCH_PIXELS = 16 * 256 * 256  # images per generator call: 16 at 256 px, 1024 at 32 px
VIDEO_FORMATS = ("auto", "mp4", "gif")


class SampleError(ConfigError):
    """Sample inputs that cannot be used; the message names the folder or flag and the fix."""


@dataclass
class DomainFolder:
    """Images of a folder of domain folders: float32 [N, H, W, 3] in [-1, 1], domain indices, files."""

    images: np.ndarray
    labels: np.ndarray
    paths: list[Path]


def load_domain_folder(root: str | Path, domain_names: list[str], img_size: int, flag: str = "--src") -> DomainFolder:
    """Every image of ROOT/<domain>/, domains in the model's order, files sorted; names must be the model's."""
    from stargan_keras.data.folders import domain_folders, image_files
    from stargan_keras.core.imaging import load_image

    root = Path(root)
    if not root.is_dir():
        raise SampleError(f"{flag} {root}: no such folder.")
    folders = {folder.name: folder for folder in domain_folders(root)}
    names = ", ".join(domain_names)
    if not folders:
        raise SampleError(f"{flag} {root} has no domain folders; expected subfolders named like the model's "
                          f"domains ({names}).")
    for name in folders:
        if name not in domain_names:
            raise SampleError(f"{flag} {root}: folder {name!r} is not a domain of the model ({names}); rename or "
                              "remove it.")
    images, labels, paths = [], [], []
    for domain, name in enumerate(domain_names):
        if name not in folders:
            continue
        files = image_files(folders[name])
        if not files:
            raise SampleError(f"{flag} {folders[name]} holds no .jpg/.jpeg/.png image; add some or remove it.")
        for path in files:
            images.append(load_image(path, img_size))
            labels.append(domain)
            paths.append(path)
    return DomainFolder(np.stack(images), np.array(labels, np.int32), paths)


def interpolation_alphas(start: float = -5.0, stop: float = 5.0, step: float = 0.5,
                         tail: int = TAIL_FRAMES) -> np.ndarray:
    """0, then sigmoid(t) for t from `start` to `stop` (exclusive) by `step`, then `tail` ones.

    The sigmoid spacing eases in and out of each style; the ones hold the arrival.
    """
    ramp = 1.0 / (1.0 + np.exp(-np.arange(start, stop, step)))
    return np.concatenate([[0.0], ramp, np.ones(tail)]).astype(np.float32)


def generate(translator, x, s, masks=None) -> np.ndarray:
    """G(x, s) as uint8, in chunks of about BATCH_PIXELS pixels: grids and videos need thousands of these.

    `masks`, the face masks of x row for row (`translator.face_masks`), are computed per chunk when not given.
    """
    from stargan_keras.core.imaging import to_uint8

    batch_size = max(1, BATCH_PIXELS // (x.shape[1] * x.shape[2]))
    chunks = []
    for i in range(0, len(x), batch_size):
        rows = slice(i, i + batch_size)
        chunk_masks = None if masks is None else tuple(m[rows] for m in masks)
        chunks.append(to_uint8(translator.synthesize(x[rows], s[rows], chunk_masks)))
    return np.concatenate(chunks)


def generate_table(translator, x_src, styles) -> np.ndarray:
    """[len(styles), len(x_src), H, W, 3] uint8: every source translated with every style, the FAN and G's
    content encoding run once per source (`Translator.synthesize_each`), in chunks of about BATCH_PIXELS
    pixels of sources."""
    from stargan_keras.core.imaging import to_uint8

    x_src, styles = np.asarray(x_src), np.asarray(styles, np.float32)
    batch_size = max(1, BATCH_PIXELS // (x_src.shape[1] * x_src.shape[2] * len(styles)))
    chunks = []
    for i in range(0, len(x_src), batch_size):
        x = x_src[i:i + batch_size]
        each = np.broadcast_to(styles[:, None], (len(styles), len(x), styles.shape[-1]))
        chunks.append(to_uint8(translator.synthesize_each(x, each, translator.face_masks(x))))
    return np.concatenate(chunks, axis=1)


def _blank(img_size: int) -> np.ndarray:
    return np.full((img_size, img_size, 3), 255, np.uint8)


def reference_grid(translator, x_src, x_ref, y_ref) -> np.ndarray:
    """First row: a blank cell, then the references; then each source followed by its translations."""
    from stargan_keras.core.imaging import make_grid, to_uint8

    table = generate_table(translator, x_src, translator.style_from_reference(x_ref, y_ref))  # [refs, sources]
    rows = [[_blank(x_src.shape[1])] + list(to_uint8(x_ref))]
    rows += [[to_uint8(source)] + list(table[:, i]) for i, source in enumerate(x_src)]
    return make_grid(rows)


def domain_latent_styles(translator, z, psi: float) -> np.ndarray:
    """[num_domains, K, style_dim]: F(z_k, d) truncated by psi toward the translator's mean style of d,
    for every domain d and latent code z_k."""
    styles = [np.asarray(translator.style_from_latent(z, np.full(len(z), domain, np.int32), psi))
              for domain in range(translator.config.model.num_domains)]
    return np.stack(styles)


def latent_grid(translator, x_src, styles) -> np.ndarray:
    """First row the sources, then one row per (domain, latent code) of `styles` [D, K, style_dim]."""
    from stargan_keras.core.imaging import make_grid, to_uint8

    table = generate_table(translator, x_src, styles.reshape(-1, styles.shape[-1]))
    return make_grid([list(to_uint8(x_src))] + [list(row) for row in table])


def pair_references(y_src, y_ref) -> np.ndarray:
    """For each source, a reference of another domain when there is one, taking the references in turn."""
    y_src, y_ref = np.asarray(y_src), np.asarray(y_ref)
    picks = []
    for turn, label in enumerate(y_src):
        others = np.flatnonzero(y_ref != label)
        candidates = others if len(others) else np.arange(len(y_ref))
        picks.append(candidates[turn % len(candidates)])
    return np.array(picks)


def cycle_grid(translator, x_src, y_src, x_ref, y_ref) -> np.ndarray:
    """Rows: sources, their references, translations G(x, E(ref)), reconstructions G(translation, E(x))."""
    from stargan_keras.core.imaging import from_uint8, make_grid, to_uint8

    translated = generate(translator, x_src, translator.style_from_reference(x_ref, y_ref))
    reconstructed = generate(translator, from_uint8(translated), translator.style_from_reference(x_src, y_src))
    return make_grid([list(to_uint8(x_src)), list(to_uint8(x_ref)), list(translated), list(reconstructed)])


def _row(images: np.ndarray) -> np.ndarray:
    """[N, H, W, 3] -> [H, N*W, 3], side by side without padding (video frames)."""
    return np.concatenate(list(images), axis=1)


def _interpolation_panels(translator, x_src, s_prev, s_next, alphas) -> list[np.ndarray]:
    """Per alpha: the sources above their translations by lerp(s_prev, s_next, alpha), [2H, N*W, 3]."""
    from stargan_keras.core.imaging import to_uint8

    unique, inverse = np.unique(alphas, return_inverse=True)  # the held ones are generated once
    styles = (1.0 - unique[:, None]) * s_prev[None] + unique[:, None] * s_next[None]
    table = generate_table(translator, x_src, styles.astype(np.float32))
    sources = _row(to_uint8(x_src))
    panels = [np.concatenate([sources, _row(outputs)], axis=0) for outputs in table]
    return [panels[i] for i in inverse]


def _slide(previous: np.ndarray, following: np.ndarray, alpha: float, margin: int) -> np.ndarray:
    """The reference column of a frame [2H, W + margin]: `following` rises from the bottom as alpha goes to 1,
    pushing `previous` from beside the translations up beside the sources."""
    height, width = previous.shape[:2]
    stacked = np.concatenate([previous, following], axis=0)
    column = np.zeros((2 * height, width + margin, 3), np.uint8)
    top = int(height * (1.0 - alpha))
    column[top:, :width] = stacked[:2 * height - top]
    return column


def _progress(label: str, total: int, enabled: bool):
    import keras

    if not enabled:
        return None
    print(label, flush=True)
    return keras.utils.Progbar(total)


def reference_video_frames(translator, x_src, x_ref, y_ref, progress: bool = False) -> Iterator[np.ndarray]:
    """Frames moving the style from each reference to the next one of the same domain."""
    from stargan_keras.core.imaging import to_uint8

    alphas = interpolation_alphas()
    styles = np.asarray(translator.style_from_reference(x_ref, y_ref))
    refs = to_uint8(x_ref)
    margin = SLIDE_MARGIN * x_src.shape[1] // 256
    steps = [i for i in range(1, len(x_ref)) if y_ref[i] == y_ref[i - 1]]
    if not steps:
        raise SampleError("the reference video needs two references of one domain in --ref; add some.")
    bar = _progress("reference interpolation video", len(steps), progress)
    frame = None
    for count, i in enumerate(steps, start=1):
        panels = _interpolation_panels(translator, x_src, styles[i - 1], styles[i], alphas)
        for alpha, panel in zip(alphas, panels):
            frame = np.concatenate([_slide(refs[i - 1], refs[i], alpha, margin), panel], axis=1)
            yield frame
        if bar is not None:
            bar.update(count)
    for _ in range(TAIL_FRAMES):
        yield frame


def latent_video_frames(translator, x_src, styles, progress: bool = False) -> Iterator[np.ndarray]:
    """Frames moving the style from each latent code to the next, domain by domain; `styles` [D, K, style_dim]."""
    alphas = interpolation_alphas()
    steps = [(d, k) for d in range(styles.shape[0]) for k in range(1, styles.shape[1])]
    bar = _progress("latent interpolation video", len(steps), progress)
    panel = None
    for count, (d, k) in enumerate(steps, start=1):
        for panel in _interpolation_panels(translator, x_src, styles[d, k - 1], styles[d, k], alphas):
            yield panel
        if bar is not None:
            bar.update(count)
    for _ in range(TAIL_FRAMES):
        yield panel


def write_video(stem: str | Path, frames: Iterable[np.ndarray], fps: float = VIDEO_FPS,
                video_format: str = "auto") -> Path:
    """`stem`.mp4 through ffmpeg (libx264) when available and wanted, else `stem`.gif through Pillow."""
    ffmpeg = shutil.which("ffmpeg")
    if video_format == "mp4" and ffmpeg is None:
        raise SampleError("--video-format mp4 needs ffmpeg on PATH; install it or pass --video-format gif.")
    frames = iter(frames)
    first = next(frames)
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    if ffmpeg is not None and video_format != "gif":
        return _write_mp4(ffmpeg, stem.with_suffix(".mp4"), first, frames, fps)
    from PIL import Image

    path = stem.with_suffix(".gif")
    Image.fromarray(first).save(path, save_all=True, append_images=(Image.fromarray(f) for f in frames),
                                duration=round(1000 / fps), loop=0)
    return path


def _write_mp4(ffmpeg: str, path: Path, first: np.ndarray, frames: Iterator[np.ndarray], fps: float) -> Path:
    height, width = first.shape[:2]
    even = (height + height % 2, width + width % 2)  # yuv420p needs even sides

    def padded(frame):
        return np.pad(frame, ((0, even[0] - height), (0, even[1] - width), (0, 0)))

    command = [ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s",
               f"{even[1]}x{even[0]}", "-framerate", str(fps), "-i", "-", "-pix_fmt", "yuv420p",
               "-vcodec", "libx264", str(path)]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for frame in itertools.chain([first], frames):
            process.stdin.write(padded(frame).tobytes())
    except BrokenPipeError:
        pass  # ffmpeg stopped early; its exit status and message are reported below
    finally:
        process.stdin.close()
    error = process.stderr.read().decode(errors="replace")
    if process.wait() != 0:
        raise SampleError(f"ffmpeg could not write {path}: {error.strip()[:500]}. Pass --video-format gif "
                          "to write an animated GIF instead.")
    return path


def spread_sources(labels, count: int) -> np.ndarray:
    """Indices of `count` sources taking the domains in turn, so a short video still shows each domain."""
    labels = np.asarray(labels)
    queues = [list(np.flatnonzero(labels == d)) for d in np.unique(labels)]
    picked = []
    while len(picked) < min(count, len(labels)):
        for queue in queues:
            if queue and len(picked) < count:
                picked.append(queue.pop(0))
    return np.array(sorted(picked))


def sample(translator, src_dir, ref_dir, out_dir, *, seed: int = 0, num_latent: int = 5, video_sources: int = 5,
           video_format: str = "auto", progress: bool = True) -> dict[str, Path]:
    """Write every figure and video of a `Translator` to `out_dir`; returns {name: path}.

    `seed` draws the latent codes; truncation pulls toward the translator's mean styles (the
    command seeds those with the same --seed, through `Translator(mean_style_seed=...)`).
    """
    from stargan_keras.core.imaging import save_image

    if num_latent < 2:
        raise SampleError(f"--num-latent {num_latent}: the latent video moves between codes and needs at least 2.")
    if video_sources < 1:
        raise SampleError(f"--video-sources {video_sources}: must be at least 1.")
    if video_format not in VIDEO_FORMATS:
        raise SampleError(f"--video-format {video_format!r}: choose one of {', '.join(VIDEO_FORMATS)}.")
    cfg = translator.config.model
    names = cfg.resolved_domain_names
    src = load_domain_folder(src_dir, names, cfg.img_size, "--src")
    ref = load_domain_folder(ref_dir, names, cfg.img_size, "--ref")
    out_dir = Path(out_dir)
    bar = _progress(f"figures: {len(src.paths)} sources, {len(ref.paths)} references", 2 + len(SAMPLE_PSIS),
                    progress)
    written = {"reference": save_image(out_dir / "reference.jpg",
                                       reference_grid(translator, src.images, ref.images, ref.labels))}
    z = np.random.default_rng(seed).standard_normal((num_latent, cfg.latent_dim)).astype(np.float32)
    styles = {psi: domain_latent_styles(translator, z, psi) for psi in SAMPLE_PSIS}
    for done, psi in enumerate(SAMPLE_PSIS, start=1):
        if bar is not None:
            bar.update(done)
        written[f"latent_psi_{psi}"] = save_image(out_dir / f"latent_psi_{psi}.jpg",
                                                  latent_grid(translator, src.images, styles[psi]))
    picks = pair_references(src.labels, ref.labels)
    written["cycle"] = save_image(out_dir / "cycle.jpg", cycle_grid(translator, src.images, src.labels,
                                                                   ref.images[picks], ref.labels[picks]))
    if bar is not None:
        bar.update(2 + len(SAMPLE_PSIS))
    x_video = src.images[spread_sources(src.labels, video_sources)]
    written["video_ref"] = write_video(out_dir / "video_ref", reference_video_frames(
        translator, x_video, ref.images, ref.labels, progress), video_format=video_format)
    written["video_latent"] = write_video(out_dir / "video_latent", latent_video_frames(
        translator, x_video, styles[1.0], progress), video_format=video_format)
    return written


def sample_grids(translator: Translator, batch: dict, z) -> dict[str, np.ndarray]:
    """The grids of a sample step, uint8, from a Translator (of the EMA networks) and a fixed val batch.

    `reference`: rows source, reference, output = G(src, E(ref)), cycle = G(output, E(src)).
    `latent_psi<psi>`: the sources, then one row per domain of G(src, F(z, domain) truncated toward
    the translator's mean style of the domain).
    """
    x_src, y_src = batch["x_src"], batch["y_src"]
    masks = translator.face_masks(x_src)
    output = translator.reference_guided(x_src, batch["x_ref"], batch["y_ref"], masks)
    cycle = translator.reference_guided(output, x_src, y_src, translator.face_masks(output))
    grids = {"reference": make_grid([list(x_src), list(batch["x_ref"]), list(output.numpy()), list(cycle.numpy())])}
    domains = range(translator.config.model.num_domains)
    for psi in SAMPLE_PSIS:
        styles = tf.stack([translator.style_from_latent(z, np.full(len(x_src), domain, np.int32), psi)
                           for domain in domains])
        rows = [list(x_src)] + [list(row) for row in translator.synthesize_each(x_src, styles, masks).numpy()]
        grids[f"latent_psi{psi}"] = make_grid(rows)
    return grids


class SampleGrids(PeriodicSamples):
    """StarGAN v2's `sample_grids` of a fixed val batch.

    `networks` are the EMA networks the trainer updates in place; the mean styles of the
    truncation are recomputed at each sample step, since the weights have changed.
    """

    def __init__(self, config, networks, batch: dict, every: int, samples_dir, writer, seed: int = 0):
        super().__init__(every, samples_dir, writer)
        self.translator = Translator(config, networks, mean_style_seed=seed)
        self.batch = batch
        self.z = tf.random.stateless_normal((len(batch["x_src"]), config.model.latent_dim), seed=[seed, 1])

    def grids(self) -> dict[str, np.ndarray]:
        self.translator.update_mean_styles()
        return sample_grids(self.translator, self.batch, self.z)
