"""What every dataset resolves to: named domains, and per split and domain a source of images.

A source is either image files (read and decoded by tf.data at training time) or uint8
arrays already in memory (the synthetic `shapes` set). Files that could not be decoded
were dropped when the dataset was scanned; they are listed here so that runs can report
them at the end instead of dying on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stargan_keras.core.config import ConfigError

SPLITS = ("train", "val")


class DatasetError(ConfigError):
    """A dataset that cannot be trained on; the message names the folder or file and the fix."""


@dataclass(frozen=True)
class BadFile:
    """An image file that was skipped, and why."""

    path: str
    reason: str


@dataclass
class ImageSource:
    """One domain's images in one split: files (`paths`) or a uint8 array [N, H, W, 3] (`array`).

    `inline` maps an index of `paths` to PNG bytes already converted to RGB, for the few
    files TensorFlow's decoders would read differently from PIL (CMYK JPEGs, odd formats).
    `factors` holds the ground-truth factors of synthetic images, aligned with `array`.
    """

    paths: tuple[str, ...] = ()
    array: np.ndarray | None = field(default=None, repr=False)
    inline: dict[int, bytes] = field(default_factory=dict, repr=False)
    factors: dict[str, np.ndarray] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.array) if self.array is not None else len(self.paths)

    @property
    def in_memory(self) -> bool:
        return self.array is not None


@dataclass
class DomainImages:
    """A dataset ready for the input pipeline: domains sorted by name, train and val sources."""

    name: str
    domain_names: list[str]
    splits: dict[str, list[ImageSource]]
    bad_files: list[BadFile] = field(default_factory=list)
    converted: int = 0  # files decoded with PIL because TF's decoders would not match it

    @property
    def num_domains(self) -> int:
        return len(self.domain_names)

    def counts(self, split: str = "train") -> list[int]:
        return [len(source) for source in self.splits[split]]

    def describe(self, width: int = 100) -> str:
        """Lines for the start of a run: the domains, then each split's images per domain (its total and range
        when the domains would not fit `width` columns)."""
        lines = [f"{self.name}: {self.num_domains} domains"]
        for split in SPLITS:
            counts = self.counts(split)
            line = f"  {split:<5}  " + ", ".join(f"{d} {n}" for d, n in zip(self.domain_names, counts))
            if len(line) > width:
                line = f"  {split:<5}  {sum(counts)} images, {min(counts)} to {max(counts)} per domain"
            lines.append(line)
        return "\n".join(lines)

    def bad_file_summary(self, limit: int = 10) -> str:
        """The end-of-run summary of skipped files (empty when there were none)."""
        if not self.bad_files:
            return ""
        lines = [f"{len(self.bad_files)} image file(s) of {self.name} could not be used and were skipped:"]
        lines += [f"  {bad.path}: {bad.reason}" for bad in self.bad_files[:limit]]
        if len(self.bad_files) > limit:
            lines.append(f"  ... and {len(self.bad_files) - limit} more")
        return "\n".join(lines)
