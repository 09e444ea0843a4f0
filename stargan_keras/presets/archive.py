"""Read the authors' StarGAN v1 zips (`{step}-G.ckpt`, `{step}-D.ckpt`) without trusting them.

The archive's directory is checked before anything is decompressed: a bounded number of
members, a bounded total size, and no member that expands far beyond its compressed size (a
zip bomb). Members are never extracted under their own names: the two checkpoints are copied
into the caller's temporary directory under names made here, so `../` or absolute names
cannot write anywhere else.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

from stargan_keras.core.torch_io import ConversionError

MAX_MEMBERS = 64
MAX_TOTAL_BYTES = 4 * 10**9  # the released zips hold about 213 MB
MAX_RATIO = 100  # float32 weights barely compress; a member that expands 100-fold is not weights
V1_MEMBER = re.compile(r"(\d+)-([GD])\.ckpt")


def extract_v1_checkpoints(archive: str | Path, into: str | Path) -> tuple[Path, Path | None]:
    """(`{step}-G.ckpt`, `{step}-D.ckpt` or None) of the highest step in `archive`, copied into `into`."""
    archive, into = Path(archive), Path(into)
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            _check_limits(archive, members)
            found = {}
            for info in members:
                match = V1_MEMBER.fullmatch(Path(info.filename.replace("\\", "/")).name)
                if match and not info.is_dir():
                    found[(int(match[1]), match[2])] = info
            steps = sorted({step for step, kind in found if kind == "G"})
            if not steps:
                listed = ", ".join(info.filename for info in members[:5]) or "nothing"
                raise ConversionError(f"{archive} holds no {{step}}-G.ckpt (it holds {listed}): it is not the "
                                      "authors' StarGAN release.")
            step = steps[-1]
            paths = []
            for kind in "GD":
                info = found.get((step, kind))
                if info is None:
                    paths.append(None)
                    continue
                path = into / f"{step}-{kind}.ckpt"
                with zf.open(info) as source, open(path, "wb") as out:
                    shutil.copyfileobj(source, out)
                paths.append(path)
            return paths[0], paths[1]
    except (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError) as err:
        raise ConversionError(f"{archive} is not a readable zip archive ({type(err).__name__}: {err}); it may be "
                              "truncated or another file.") from None


def _check_limits(archive: Path, members: list[zipfile.ZipInfo]) -> None:
    if len(members) > MAX_MEMBERS:
        raise ConversionError(f"{archive} has {len(members)} members (at most {MAX_MEMBERS} expected): refused, "
                              "it is not the authors' release.")
    total = sum(info.file_size for info in members)
    if total > MAX_TOTAL_BYTES:
        raise ConversionError(f"{archive} would expand to {total / 1e9:.1f} GB (at most {MAX_TOTAL_BYTES / 1e9:.0f} "
                              "GB expected): refused, it is not the authors' release.")
    for info in members:
        if info.file_size > MAX_RATIO * max(info.compress_size, 1) and info.file_size > 2**20:
            raise ConversionError(f"{archive}: member {info.filename} would expand {info.file_size:,} bytes from "
                                  f"{info.compress_size:,} (a zip bomb?): refused, it is not the authors' release.")
