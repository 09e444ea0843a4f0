"""The LiteRT.js files a built package carries: copied from integrity-checked tarballs, only those the page loads."""

import base64
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from stargan_keras.browser import litert_files
from stargan_keras.browser.server import find_litert

REPO = Path(__file__).resolve().parents[2]


def _tarball(path, files: dict) -> bytes:
    with tarfile.open(path, "w:gz") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return path.read_bytes()


@pytest.fixture
def packages(tmp_path):
    """Fake tarballs of the two pinned packages (every file the page loads, plus a source map and the JSPI build
    it never loads) and a package-lock.json that pins them by their sha512."""
    tarballs, lock = {}, {"packages": {}}
    for name, (_, files) in litert_files.PAGE_FILES.items():
        content = {path: f"{name}/{path}".encode() for path in files}
        content.update({"dist/index.js.map": b"{}", "wasm/litert_wasm_jspi_internal.wasm": b"jspi"})
        path = tmp_path / f"{name.replace('/', '-')}.tgz"
        digest = base64.b64encode(hashlib.sha512(_tarball(path, content)).digest()).decode()
        tarballs[name] = path
        lock["packages"][f"node_modules/{name}"] = {"version": "2.5.3", "integrity": f"sha512-{digest}"}
    (tmp_path / "package-lock.json").write_text(json.dumps(lock))
    return tmp_path / "package-lock.json", tarballs


def test_vendor_copies_only_the_page_files_and_records_them(packages, tmp_path):
    lock, tarballs = packages
    dest = tmp_path / "litert"
    manifest = litert_files.vendor(lock, dest, tarballs)
    copied = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert copied == sorted([*manifest["files"], litert_files.MANIFEST])
    assert "core/wasm/litert_wasm_threaded_internal.wasm" in copied and "wasm-utils/dist/index.js" in copied
    assert not any(name.endswith((".map", "jspi_internal.wasm")) for name in copied)
    assert (dest / "core/dist/index.js").read_bytes() == b"@litertjs/core/dist/index.js"
    assert manifest["files"]["core/dist/index.js"] == hashlib.sha256(b"@litertjs/core/dist/index.js").hexdigest()
    assert manifest["packages"]["@litertjs/core"]["version"] == "2.5.3"
    assert litert_files.complete(dest) and find_litert([tmp_path / "nowhere"], packaged=dest) == dest
    (dest / "core/wasm/litert_wasm_compat_internal.js").unlink()
    assert not litert_files.complete(dest)


def test_a_tarball_other_than_the_pinned_one_is_refused(packages, tmp_path):
    lock, tarballs = packages
    data = bytearray(tarballs["@litertjs/core"].read_bytes())
    data[-1] ^= 1
    tarballs["@litertjs/core"].write_bytes(bytes(data))
    with pytest.raises(litert_files.LiteRTFilesError, match="not package-lock.json's sha512"):
        litert_files.vendor(lock, tmp_path / "litert", tarballs)
    assert not litert_files.complete(tmp_path / "litert")


def test_the_pinned_versions_are_those_of_the_repository_lock():
    pins = litert_files.pinned(REPO / "package-lock.json")
    package = json.loads((REPO / "package.json").read_text())
    assert pins["@litertjs/core"][0] == package["dependencies"]["@litertjs/core"]
    assert all(integrity.startswith("sha512-") for _, integrity in pins.values())
