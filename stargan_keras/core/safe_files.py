"""Reading and writing files that a careless or hostile user may have placed: sizes checked before
anything is allocated, and writes that never follow a link or replace what this project did not write.

- `read_small_file` reads a regular file up to a byte cap (never /dev/zero, a FIFO or a 10 GB file).
- `write_atomic` writes through an O_EXCL | O_NOFOLLOW temporary file and `os.replace`: a link
  planted at the destination or at the temporary name is replaced or refused, never followed.
- `memory_bytes` / `check_memory` turn numeric flags into one-line errors before they allocate.
- `check_zip` bounds an archive's member count, uncompressed size and compression ratio.
- `check_weights_file` compares a Keras `.weights.h5`'s declared datasets with the network before
  Keras reads them.
- `write_marker` / `read_marker_kind`: the marker file that says a run or model directory was written by
  this project, so writers never replace a directory the user owns (`checkpoint.directory_kind`).
"""

from __future__ import annotations

import json
import os
import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

from stargan_keras.core.errors import UserError

MARKER_FILE = ".stargan_keras.json"
MARKER_VERSION = 1
RUN_KIND, MODEL_KIND = "run", "model"
ARCHIVE_SCALE_ENV = "STARGAN_KERAS_ARCHIVE_LIMIT_SCALE"
TEMPORARY_NAME = re.compile(r"\..+\.\d+\.[0-9a-f]{8}\.tmp")  # write_atomic's
MEMORY_SHARE = 0.5  # a flag may ask for at most this share of the machine's memory for one array


class UnsafeFileError(UserError, ValueError):
    """A file or directory that is too large, of the wrong kind, or a link where none may be."""


# -- reading --------------------------------------------------------------------------------------------------------
def read_small_file(path: str | Path, limit: int, what: str) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; anything else is a one-line error naming `what`."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the open
    except FileNotFoundError:
        raise UnsafeFileError(f"{what} {path} does not exist.") from None
    except OSError as err:
        raise UnsafeFileError(f"{what} {path} cannot be read ({err.strerror}).") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise UnsafeFileError(f"{what} {path} is not a regular file; pass a file.")
    with os.fdopen(fd, "rb") as handle:
        if info.st_size > limit:
            raise UnsafeFileError(f"{what} {path} has {info.st_size} bytes, more than the {limit} this file may "
                                  "have; is it the right file?")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise UnsafeFileError(f"{what} {path} grew past {limit} bytes while it was read; is it the right file?")
    return data


# -- writing --------------------------------------------------------------------------------------------------------
def write_atomic(path: str | Path, data: bytes | str, mode: int = 0o644) -> None:
    """Write `data` to `path` so that a crash leaves the old file or the new one, and no link is followed.

    The temporary file is created with O_EXCL | O_NOFOLLOW (a link planted at its name makes
    the open fail instead of writing through it); `os.replace` then replaces whatever `path`
    is, a link included, without touching the link's target.
    """
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def is_temporary_name(name: str) -> bool:
    """Whether `name` is a temporary file of `write_atomic` (left behind when a process was killed mid-write)."""
    return TEMPORARY_NAME.fullmatch(name) is not None


def open_no_follow(path: str | Path, what: str):
    """A read-write handle on `path`, created if absent; a link at `path` is refused, never followed."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError:
        if Path(path).is_symlink():
            raise UnsafeFileError(f"{what}: {path} is a symbolic link; remove it (this project never writes "
                                  "through links).") from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise UnsafeFileError(f"{what}: {path} is not a regular file; remove it.")
    return os.fdopen(fd, "r+", encoding="utf-8")


def refuse_links(root: str | Path, names, what: str) -> None:
    """Refuse a directory that is someone else's, or where any of `names` is a link into elsewhere."""
    root = Path(root)
    if root.is_symlink():
        return  # a directory given as a link is the user's own choice; what matters is what is inside it
    for name in names:
        if (root / name).is_symlink():
            raise UnsafeFileError(f"{what} {root}: {name} is a symbolic link (to {os.readlink(root / name)}); a "
                                  "run directory's files must be its own. Remove the link or pass another directory.")
    if root.exists() and hasattr(os, "getuid") and root.stat().st_uid not in (os.getuid(), 0):
        raise UnsafeFileError(f"{what} {root} belongs to another user; pass a directory of your own.")


# -- memory ---------------------------------------------------------------------------------------------------------
def memory_bytes() -> int:
    """The memory this process may use: the machine's, or less under an address-space limit."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        total = 16 * 2**30
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            total = min(total, soft)
    except (ImportError, ValueError, OSError):
        pass
    return int(total)


def check_memory(nbytes: int, flags: str, share: float = MEMORY_SHARE) -> None:
    """Refuse, in one line naming `flags`, a request whose arrays alone need more than `share` of memory."""
    allowed = int(memory_bytes() * share)
    if nbytes > allowed:
        raise UnsafeFileError(f"{flags}: needs {nbytes / 2**30:.1f} GiB for its arrays alone, more than the "
                              f"{allowed / 2**30:.1f} GiB ({share:.0%} of this machine's memory) it may take; pass "
                              "smaller values.")


# -- archives -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArchiveLimits:
    """What an archive may hold. The defaults fit the real data sets with room to spare: CelebA's
    202,599 images and 1.4 GB, AFHQ's 16,130 images and CelebA-HQ's 30,000, each a few GB; images barely
    compress, so a member that deflates by more than `max_ratio` is not an image."""

    max_members: int = 500_000
    max_total_bytes: int = 64 * 2**30
    max_member_bytes: int = 256 * 2**20
    max_ratio: float = 100.0

    def scaled(self, scale: float) -> "ArchiveLimits":
        return ArchiveLimits(int(self.max_members * scale), int(self.max_total_bytes * scale),
                             int(self.max_member_bytes * scale), self.max_ratio * scale)


def archive_limits() -> ArchiveLimits:
    """The default limits times $STARGAN_KERAS_ARCHIVE_LIMIT_SCALE (for a larger data set of one's own)."""
    text = os.environ.get(ARCHIVE_SCALE_ENV, "").strip()
    if not text:
        return ArchiveLimits()
    try:
        scale = float(text)
        if not scale > 0:
            raise ValueError(text)
    except ValueError:
        raise UnsafeFileError(f"{ARCHIVE_SCALE_ENV}={text!r}: expected a positive number such as 4.") from None
    return ArchiveLimits().scaled(scale)


def check_zip(path: str | Path, limits: ArchiveLimits | None = None) -> None:
    """Refuse a zip whose declared members exceed `limits`, before anything is extracted.

    Reads only the central directory; a member's declared sizes are what extraction writes
    (Python's and TFDS's extractors stop at the declared size).
    """
    path, limits = Path(path), limits or archive_limits()
    raise_hint = f"if it is the right file, raise the limits with {ARCHIVE_SCALE_ENV}=4 (or more)."
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise UnsafeFileError(f"{path} is not a readable zip ({err}); download it again.") from None
    if len(members) > limits.max_members:
        raise UnsafeFileError(f"{path} has {len(members)} members, more than the {limits.max_members} a data set "
                              f"zip may have; {raise_hint}")
    total = 0
    for member in members:
        size, packed = member.file_size, max(member.compress_size, 1)
        if size > limits.max_member_bytes:
            raise UnsafeFileError(f"{path}: member {member.filename!r} unpacks to {size / 2**20:.0f} MiB, more than "
                                  f"the {limits.max_member_bytes / 2**20:.0f} MiB an image or list file may take; "
                                  f"{raise_hint}")
        if size > 2**20 and size / packed > limits.max_ratio:
            raise UnsafeFileError(f"{path}: member {member.filename!r} unpacks {size / packed:.0f} times larger "
                                  f"than it is packed, more than the {limits.max_ratio:.0f} images allow; "
                                  f"{raise_hint}")
        total += size
    if total > limits.max_total_bytes:
        raise UnsafeFileError(f"{path} unpacks to {total / 2**30:.1f} GiB, more than the "
                              f"{limits.max_total_bytes / 2**30:.0f} GiB a data set zip may take; {raise_hint}")


# -- Keras weights files --------------------------------------------------------------------------------------------
OPTIMIZER_SLOTS = 2  # Adam's moments: a saved optimizer holds at most this many copies of each weight's shape
OPTIMIZER_SCALARS = 8  # and a few scalars (its iteration count, learning rate)


def check_weights_file(path: str | Path, model, what: str) -> None:
    """Before Keras reads `path`: every dataset it declares has the shape of one of `model`'s variables (or,
    under `optimizer/`, of its optimizer's slots and scalars, which a compiled model saves) and a plain dtype,
    and together they are no larger than the model and its optimizer, so a small file cannot ask for gigabytes."""
    import h5py
    import numpy as np

    path = Path(path)
    wanted: dict[tuple, int] = {}
    for variable in model.weights:
        shape = tuple(int(d) for d in variable.shape)
        wanted[shape] = wanted.get(shape, 0) + 1
    budget = sum(int(np.prod(shape)) * 8 * count for shape, count in wanted.items()) * (1 + OPTIMIZER_SLOTS)
    optimizer = {shape: count * OPTIMIZER_SLOTS for shape, count in wanted.items()}
    optimizer[()] = optimizer.get((), 0) + OPTIMIZER_SCALARS
    budget += OPTIMIZER_SCALARS * 8
    found = []
    try:
        with h5py.File(path, "r") as handle:
            handle.visititems(lambda name, item: found.append((name, item.shape, item.dtype))
                              if isinstance(item, h5py.Dataset) else None)
    except (OSError, ValueError) as err:
        raise UnsafeFileError(f"{what} {path} is not a readable weights file ({err}); write it again.") from None
    declared = 0
    for name, shape, dtype in found:
        shape = tuple(int(d) for d in (shape or ()))
        if dtype.kind not in "fiub" or dtype.itemsize > 8:
            raise UnsafeFileError(f"{what} {path}: dataset {name} has dtype {dtype}, not a weight's; is it the "
                                  "right file?")
        left = optimizer if name.startswith("optimizer/") else wanted
        if left.get(shape, 0) == 0:
            raise UnsafeFileError(f"{what} {path}: dataset {name} has shape {shape}, which no variable of the "
                                  "network has; the file was written for another model (check its config.yaml).")
        left[shape] -= 1
        declared += int(np.prod(shape)) * dtype.itemsize
    if declared > budget:
        raise UnsafeFileError(f"{what} {path} declares {declared} bytes of weights, more than the network has.")


# -- the marker of directories this project wrote -------------------------------------------------------------------
def write_marker(directory: str | Path, kind: str) -> None:
    """Say, in `directory`, that this project wrote it and as what (`RUN_KIND`, `MODEL_KIND`)."""
    write_atomic(Path(directory) / MARKER_FILE, json.dumps({"kind": kind, "version": MARKER_VERSION}) + "\n")


def read_marker_kind(directory: str | Path) -> str | None:
    """The kind recorded in a directory's marker, or None without a readable one."""
    marker = Path(directory) / MARKER_FILE
    if marker.is_symlink() or not marker.is_file():
        return None
    try:
        data = json.loads(read_small_file(marker, 4096, "marker"))
    except (UnsafeFileError, ValueError):
        return None
    kind = data.get("kind") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) else None
