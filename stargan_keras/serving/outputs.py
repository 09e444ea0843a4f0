"""Files the serving commands write, checked before the work that produces them (a request, a conversion)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from stargan_keras.core.errors import UserError


def check_writable_file(path, flag: str, error=UserError) -> Path:
    """Fail now, naming the flag, when no file can be written at `path`: a directory is there, a file stands
    where a parent directory should be, or this user cannot write in the place. Creates nothing."""
    path = Path(path)
    try:
        if path.is_dir():
            raise error(f"{flag} {path} is a directory: pass a file name.")
        existing = path.parent
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise error(f"{flag} {path}: {existing} is a file, not a directory; pass a path under a directory.")
        with tempfile.TemporaryFile(dir=existing):  # the one sure test of writability (read-only mounts, ACLs)
            pass
        if path.exists() and not os.access(path, os.W_OK):
            raise error(f"{flag} {path}: the file is read-only; pass another name or make it writable.")
    except OSError as err:
        raise error(f"{flag} {path}: cannot write there ({err.strerror or err}); pass a place you can write "
                    "to.") from None
    return path
