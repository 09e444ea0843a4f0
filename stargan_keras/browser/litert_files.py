"""The LiteRT.js files the demo page loads, for a built package: taken from the npm tarballs that
package-lock.json pins, each tarball checked against the lock's integrity hash first.

`setup.py` calls `vendor` when it builds a wheel, so that `python -m stargan_keras.demo` of an
installed package needs neither npm nor a checkout; a checkout serves node_modules/@litertjs
after `npm ci` instead. Only the files the page can load are copied: the two ES modules and
the three WebAssembly builds LiteRT.js picks from (plain, compat for browsers without relaxed
SIMD, threaded for cross-origin-isolated pages); not its JSPI build, which the page never asks
for, nor source maps and type declarations. This module is loaded by setup.py on its own: it
imports nothing from the package.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

_WASM_BUILDS = ("litert_wasm_internal", "litert_wasm_compat_internal", "litert_wasm_threaded_internal")
# npm package -> (its folder under the served litert/ directory, the files of it the page loads)
PAGE_FILES = {
    "@litertjs/core": ("core", ("dist/index.js",) + tuple(f"wasm/{build}.{ext}" for build in _WASM_BUILDS
                                                          for ext in ("js", "wasm"))),
    "@litertjs/wasm-utils": ("wasm-utils", ("dist/index.js",)),
}
MANIFEST = "manifest.json"  # beside the copied files: the packages' versions and integrity, each file's SHA-256


class LiteRTFilesError(RuntimeError):
    """A tarball is not the one package-lock.json pins, or it lacks a file the page loads."""


class LiteRTMissing(LiteRTFilesError):
    """The pinned tarballs cannot be had here (no npm, no network and an empty npm cache)."""


def pinned(lock_path) -> dict[str, tuple[str, str]]:
    """{npm package: (version, integrity)} of the packages in PAGE_FILES, from package-lock.json."""
    packages = json.loads(Path(lock_path).read_text(encoding="utf-8")).get("packages", {})
    found = {}
    for name in PAGE_FILES:
        entry = packages.get(f"node_modules/{name}")
        if not entry or "version" not in entry or "integrity" not in entry:
            raise LiteRTFilesError(f"{lock_path}: no version and integrity for {name}; run `npm install` to pin it.")
        found[name] = (entry["version"], entry["integrity"])
    return found


def check_integrity(data: bytes, integrity: str, what: str) -> None:
    """Raise unless `data` matches one of the Subresource-Integrity hashes ("sha512-<base64> ...") of the lock."""
    for token in integrity.split():
        algorithm, _, expected = token.partition("-")
        if algorithm in ("sha512", "sha384", "sha256", "sha1"):
            if base64.b64encode(hashlib.new(algorithm, data).digest()).decode() == expected:
                return
            raise LiteRTFilesError(f"{what}: its {algorithm} is not package-lock.json's {token[:40]}...: the tarball "
                                   "is not the pinned one; clear the npm cache (npm cache clean --force) and retry.")
    raise LiteRTFilesError(f"{what}: package-lock.json's integrity {integrity[:40]!r} has no hash this build knows.")


def npm_pack(name: str, version: str, into: Path) -> Path:
    """The package's tarball, from npm's cache when `npm ci` has filled it, else from the registry."""
    npm = shutil.which("npm")
    if npm is None:
        raise LiteRTMissing("npm is not installed: it is needed to fetch LiteRT.js for the demo page.")
    result = subprocess.run([npm, "pack", f"{name}@{version}", "--prefer-offline", "--json", "--pack-destination",
                             str(into)], capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise LiteRTMissing(f"npm pack {name}@{version} failed: {result.stderr.strip()[-400:]}")
    return into / json.loads(result.stdout)[0]["filename"]


def vendor(lock_path, dest, tarballs: dict | None = None) -> dict:
    """Write the page's LiteRT.js files under `dest` (core/..., wasm-utils/...) and the manifest; return it.

    `tarballs` ({npm package: path}) replaces `npm pack`, for tests; every tarball is checked all the same.
    """
    dest = Path(dest)
    manifest = {"packages": {}, "files": {}}
    with tempfile.TemporaryDirectory(prefix="stargan-litert-") as scratch:
        for name, (version, integrity) in pinned(lock_path).items():
            tarball = Path((tarballs or {}).get(name) or npm_pack(name, version, Path(scratch)))
            data = tarball.read_bytes()
            check_integrity(data, integrity, f"{tarball.name} ({name}@{version})")
            folder, files = PAGE_FILES[name]
            with tarfile.open(tarball, "r:gz") as archive:
                for path in files:
                    try:
                        content = archive.extractfile(f"package/{path}").read()
                    except KeyError:
                        raise LiteRTFilesError(f"{name}@{version} has no {path}: the page's list of LiteRT.js "
                                               "files (litert_files.PAGE_FILES) must follow the pinned version.") \
                            from None
                    target = dest / folder / path
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(content)
                    manifest["files"][f"{folder}/{path}"] = hashlib.sha256(content).hexdigest()
            manifest["packages"][name] = {"version": version, "integrity": integrity}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def complete(directory) -> bool:
    """True when `directory` holds a manifest and every file it lists (a package's copy, written by `vendor`)."""
    directory = Path(directory)
    try:
        files = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError):
        return False
    return bool(files) and all((directory / path).is_file() for path in files)
