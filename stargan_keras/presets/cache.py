"""The presets' cache: download once, convert once, then open offline.

    $STARGAN_KERAS_HOME (default ~/.cache/stargan_keras)/
        models/<preset>/       a model directory (config.yaml, *.weights.h5, fan.weights.h5, source.json)
        downloads/<preset>/    the authors' files while they are converted (a file put here by hand is used)
        locks/<preset>.lock    held while a preset is being prepared

`source.json` (URLs, sizes, SHA-256 of what was converted) is written last inside a staging
directory that then replaces `models/<preset>` in one rename: a model directory is complete
or absent. The lock (flock: released when its process dies, even killed) makes a second
process that asks for the same preset wait, then open what the first one wrote.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from stargan_keras.core.errors import UserError
from stargan_keras.presets.catalog import PRESETS, Preset, RemoteFile
from stargan_keras.presets.download import DownloadError, fetch, sha256_of

HOME_ENV, MIRROR_ENV, OFFLINE_ENV = "STARGAN_KERAS_HOME", "STARGAN_KERAS_MIRROR", "STARGAN_KERAS_OFFLINE"
SOURCE_FILE = "source.json"
LANDMARKS_FILE = "celeba_lm_mean.npz"


class PresetError(UserError):
    """A preset that cannot be prepared; the message says what to do."""


def cache_root() -> Path:
    home = os.environ.get(HOME_ENV)
    return Path(home).expanduser() if home else Path.home() / ".cache" / "stargan_keras"


def model_dir(name: str) -> Path:
    return cache_root() / "models" / name


def is_ready(name: str) -> bool:
    return (model_dir(name) / SOURCE_FILE).is_file()


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "") not in ("", "0")


def file_url(preset: Preset, remote: RemoteFile) -> str:
    """The authors' URL, or `$STARGAN_KERAS_MIRROR/<preset>/<file name>`."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    return f"{mirror.rstrip('/')}/{preset.name}/{remote.name}" if mirror else remote.url


def ensure(preset: Preset, log=None) -> Path:
    """The preset's model directory, downloaded and converted first if this cache has none."""
    log = log or _stderr
    target = model_dir(preset.name)
    if is_ready(preset.name):
        return target
    with _locked(preset.name, log):
        if is_ready(preset.name):  # another process prepared it while this one waited
            return target
        if target.exists():
            raise PresetError(f"{target} exists but is not a complete model directory (no {SOURCE_FILE}); it was "
                              f"not written by the presets: move it away and try again.")
        _remove_stale_staging(target)
        _check_room(preset, target)
        downloads = cache_root() / "downloads" / preset.name
        records = []
        announce = _once(lambda: log(f"{preset.name}: preparing the authors' model (about "
                                     f"{preset.approx_bytes / 1e6:.0f} MB) in {cache_root()}. {preset.terms}"))
        try:
            for remote in preset.files:
                path, downloaded = _obtain(preset, remote, downloads, log, announce)
                records.append({"file": remote.name, "url": file_url(preset, remote), "bytes": path.stat().st_size,
                                "sha256": sha256_of(path), "downloaded": downloaded})
        finally:
            with contextlib.suppress(OSError):
                downloads.rmdir()  # only when empty: a partial download stays, to be resumed
        announce()
        try:
            _build(preset, downloads, target, records, log)
        except UserError as err:
            _forget(downloads, records)
            kept = [r["file"] for r in records if not r["downloaded"]]
            advice = (f"replace {', '.join(kept)} in {downloads} with the authors' files" if kept else
                      "the downloaded files were removed: run again to download them anew (if a mirror serves other "
                      "files than the authors', fix it first)")
            raise PresetError(f"preset {preset.name}: {err} ({advice}; no model directory was written)") from None
        _forget(downloads, records)
    log(f"{preset.name}: ready in {target}")
    return target


def _check_room(preset: Preset, target: Path) -> None:
    """Room for the downloads and the model directory, which holds about as much, before either starts."""
    target.parent.mkdir(parents=True, exist_ok=True)
    free, needed = shutil.disk_usage(target.parent).free, 2 * preset.approx_bytes
    if free < needed:
        raise PresetError(f"no room for preset {preset.name} in {cache_root()} ({free / 1e6:.0f} MB free, about "
                          f"{needed / 1e6:.0f} MB needed for the downloads and the model): free some space, or set "
                          f"{HOME_ENV} to a directory on a larger disk.")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _locked(name: str, log):
    locks = cache_root() / "locks"
    try:
        locks.mkdir(parents=True, exist_ok=True)
        handle = open(locks / f"{name}.lock", "a+", encoding="utf-8")
    except OSError as err:
        raise PresetError(f"cannot write in the cache {cache_root()} ({err.strerror}): make it writable, or set "
                          f"{HOME_ENV} to a directory you can write to.") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"{name}: another process is preparing it; waiting for it to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_stale_staging(target: Path) -> None:
    """Staging directories of this preset left by a killed process (the lock is ours, so none is in use)."""
    for leftover in target.parent.glob(f".{target.name}.*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _once(action):
    """`action` wrapped to run on the first call only."""
    done = []

    def run():
        if not done:
            done.append(True)
            action()

    return run


def _obtain(preset: Preset, remote: RemoteFile, downloads: Path, log, announce) -> tuple[Path, bool]:
    """The authors' file in `downloads/`: one put there by hand, else downloaded now. (path, downloaded)."""
    path = downloads / remote.name
    if path.is_file():
        log(f"{preset.name}: using {path}")
        return path, False
    url = file_url(preset, remote)
    by_hand = (f"Or download it yourself and put it at {path} (the authors' URL: {remote.url}), then run "
               "again.")
    if offline():
        raise PresetError(f"{OFFLINE_ENV}=1 forbids downloading {url} for preset {preset.name}: unset it to "
                          f"download, or put the file at {path} by hand.")
    announce()  # the weights' terms, once, before their first download
    try:
        return fetch(url, path, hand_placed_hint=by_hand, expected_bytes=remote.approx_bytes), True
    except DownloadError as err:
        raise PresetError(f"preset {preset.name}: {err}") from None
    except OSError as err:
        raise PresetError(f"preset {preset.name}: cannot write {path} ({err.strerror}): make the cache writable, "
                          f"or set {HOME_ENV} to another directory.") from None


def _forget(downloads: Path, records: list[dict]) -> None:
    """Delete what this process downloaded (the model directory keeps their digests); hand-placed files stay."""
    for record in records:
        if record["downloaded"]:
            (downloads / record["file"]).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        downloads.rmdir()


def _build(preset: Preset, downloads: Path, target: Path, records: list[dict], log) -> None:
    """Convert the files into a staging directory beside `target`, then rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model = staging / "model"
        with tempfile.TemporaryDirectory(dir=staging) as scratch:
            _convert(preset, downloads, model, Path(scratch), log)
        landmarks = preset.file("landmarks_mean")
        if landmarks is not None:
            from stargan_keras.face.alignment import load_mean_landmarks

            load_mean_landmarks(downloads / landmarks.name)  # checked as align reads it
            shutil.copyfile(downloads / landmarks.name, model / LANDMARKS_FILE)
        source = {"preset": preset.name, "license": preset.license, "converted": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                              time.gmtime()),
                  "files": [{k: v for k, v in r.items() if k != "downloaded"} for r in records]}
        (model / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")
        os.replace(model, target)
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise PresetError(f"no room to write {target} ({shutil.disk_usage(target.parent).free / 1e6:.0f} MB "
                              f"free): free some space, or set {HOME_ENV} to a directory on a larger disk.") from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _convert(preset: Preset, downloads: Path, output: Path, scratch: Path, log) -> None:
    """The family's converter on the authors' files, exactly as `python -m stargan_keras.convert` runs it."""
    from stargan_keras import families

    config = preset.config()
    fan, archive = preset.file("fan"), preset.file("zip")
    if archive is not None:  # StarGAN v1's release: a zip of {step}-G.ckpt and {step}-D.ckpt
        from stargan_keras.presets.archive import extract_v1_checkpoints

        checkpoint, discriminator = extract_v1_checkpoints(downloads / archive.name, scratch)
    else:
        checkpoint, discriminator = downloads / preset.file("nets_ema").name, None
    if fan is not None:
        config = config.replace(fan_checkpoint=str(downloads / fan.name))
    families.of_config(config).convert(checkpoint, config, output, discriminator, log=_converter_log(log))
    if fan is not None:  # the FAN travels as fan.weights.h5; the downloaded wing.ckpt is not kept
        families.read_config(output / "config.yaml").replace(fan_checkpoint="").save(output / "config.yaml")


def _converter_log(log):
    """The converter's lines, without its last one naming the staging directory."""
    return lambda message: None if message.startswith("Wrote ") else log(message)


def resolve_model(name_or_path) -> Path:
    """A model path as the commands take it: an existing file or directory as it is; a preset name (when no
    model directory of that name is here) as the preset's cached model directory, prepared on first use."""
    text = str(name_or_path)
    path = Path(name_or_path)
    if text in PRESETS and not path.is_file() and not (path / "config.yaml").exists():
        return ensure(PRESETS[text])
    if not path.exists() and "/" not in text and os.sep not in text and text.startswith("stargan"):
        from stargan_keras.presets.catalog import unknown_name_message

        raise PresetError(unknown_name_message(text))
    return path
