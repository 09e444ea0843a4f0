"""Download one file over HTTP(S) with the standard library: progress, time-outs, retries, resume.

A download goes to `<target>.part` and is renamed to `<target>` once complete, so a file
under its final name is always whole. A `.part` left by an interrupted attempt (a cut
connection, or a process killed earlier) is continued with an HTTP Range request; a server
that ignores the range sends the whole file again, and the part is restarted.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import re
import shutil
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from stargan_keras.core.errors import UserError

TIMEOUT_S = 30.0  # per connection attempt and per read: a stalled server is retried, not waited for
RETRIES = 4  # further attempts after the first, each resuming where the last one stopped
BACKOFF_S = 1.0  # doubled after each failed attempt
CHUNK = 1 << 20
PROGRESS_EVERY_S = 0.5
USER_AGENT = "stargan_keras (python urllib)"
CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
TRANSIENT = (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError)


class DownloadError(UserError):
    """A file that could not be downloaded; the message names the URL and what to do."""


class _Incomplete(Exception):
    """The connection ended before the file did (retried, resuming)."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, target: str | Path, *, hand_placed_hint: str = "", expected_bytes: int = 0,
          progress: bool = True, retries: int = RETRIES, timeout: float = TIMEOUT_S) -> Path:
    """Download `url` to `target` (resuming `target.part`); raise DownloadError after `retries` failed retries.

    `hand_placed_hint` ends the errors (how to put the file in place by hand); `expected_bytes`
    (approximate) is only for the free-space check when the server sends no length.
    """
    target = Path(target)
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    failure = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(BACKOFF_S * 2 ** (attempt - 1))
            print(f"retrying {url} ({failure}); attempt {attempt + 1} of {retries + 1}", file=sys.stderr)
        try:
            _attempt(url, part, timeout, progress, expected_bytes, hand_placed_hint)
        except urllib.error.HTTPError as err:
            if err.code < 500 and err.code not in (408, 429):
                raise DownloadError(f"cannot download {url}: the server answered HTTP {err.code} {err.reason}. "
                                    f"{hand_placed_hint}") from None
            failure = f"HTTP {err.code}"
        except (_Incomplete, *TRANSIENT) as err:
            failure = _reason(err)
        else:
            os.replace(part, target)
            return target
    raise DownloadError(f"cannot download {url} ({failure}, {retries + 1} attempts): check the network or a proxy "
                        f"(https_proxy), or set STARGAN_KERAS_MIRROR. {hand_placed_hint}")


def _reason(err: BaseException) -> str:
    reason = getattr(err, "reason", None) or err
    return str(reason).strip() or type(reason).__name__


def _attempt(url: str, part: Path, timeout: float, progress: bool, expected_bytes: int, hint: str) -> None:
    """One request: append to `part` from where it ends (or restart it), until the file is complete."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the part is not a prefix the server can continue: start over
            part.unlink()
            raise _Incomplete("the partial file did not fit the server's; restarting") from None
        raise
    with response:
        total = _total(response, have)
        if total == -1:  # a Content-Range the part does not fit: start over
            part.unlink()
            raise _Incomplete("the server resumed at another offset; restarting")
        if response.status != 206:
            have = 0  # the server sends the whole file
        _check_room(part.parent, (total - have) if total else expected_bytes, url, hint)
        mode = "ab" if have else "wb"
        bar = _Progress(url, total, have) if progress else None
        try:
            with open(part, mode) as out:
                while block := response.read(CHUNK):
                    out.write(block)
                    have += len(block)
                    if bar is not None:
                        bar.update(have)
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise _no_room(part.parent, url, hint) from None
            raise
        finally:
            if bar is not None:
                bar.close(have)
    if total is not None and have < total:
        raise _Incomplete(f"the connection ended after {have:,} of {total:,} bytes")


def _total(response, have: int) -> int | None:
    """The whole file's length, from Content-Range (206) or Content-Length (200), if the server says; -1 for a
    206 answer that does not continue at `have`."""
    if response.status == 206:
        match = CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        if match is None or int(match[1]) != have:
            return -1
        return None if match[3] == "*" else int(match[3])
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def _check_room(directory: Path, needed: int, url: str, hint: str) -> None:
    if needed and shutil.disk_usage(directory).free < needed:
        raise _no_room(directory, url, hint, needed)


def _no_room(directory: Path, url: str, hint: str, needed: int = 0) -> DownloadError:
    free = shutil.disk_usage(directory).free
    wanted = f", {needed / 1e6:.0f} MB needed" if needed else ""
    return DownloadError(f"no room to download {url} into {directory} ({free / 1e6:.0f} MB free{wanted}): free "
                         f"some space, or set STARGAN_KERAS_HOME to a directory on a larger disk.")


class _Progress:
    """One line on stderr: rewritten in place on a terminal, else a line every 10%."""

    def __init__(self, url: str, total: int | None, start: int):
        self.name = url.rsplit("/", 1)[-1].split("?", 1)[0]
        self.total, self.start, self.began = total, start, time.monotonic()
        self.tty = sys.stderr.isatty()
        self.shown_at, self.shown_tenth = 0.0, -1

    def _line(self, have: int) -> str:
        rate = (have - self.start) / max(time.monotonic() - self.began, 1e-6) / 1e6
        if self.total:
            return (f"downloading {self.name}: {100 * have / self.total:3.0f}% {have / 1e6:.1f}/"
                    f"{self.total / 1e6:.1f} MB, {rate:.1f} MB/s")
        return f"downloading {self.name}: {have / 1e6:.1f} MB, {rate:.1f} MB/s"

    def update(self, have: int) -> None:
        if self.tty:
            now = time.monotonic()
            if now - self.shown_at >= PROGRESS_EVERY_S:
                self.shown_at = now
                print("\r" + self._line(have), end="", file=sys.stderr, flush=True)
        elif self.total:
            tenth = 10 * have // self.total
            if tenth > self.shown_tenth:
                self.shown_tenth = tenth
                print(self._line(have), file=sys.stderr, flush=True)

    def close(self, have: int) -> None:
        if self.tty:
            print("\r" + self._line(have), file=sys.stderr, flush=True)
