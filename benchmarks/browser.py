"""Headless Chromium from Python: the browser test of the demo and its benchmark drive the page with it.

`Browser` runs `browser_driver.mjs` (node, playwright-core from the repository's package.json)
against the system's Chromium and sends it one call at a time. `missing()` says what is not
installed, for a skip message.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DRIVER = Path(__file__).with_name("browser_driver.mjs")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
NPM_PACKAGES = ("playwright-core", "@litertjs/core")


def chromium_path() -> str | None:
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


def missing() -> str | None:
    """Why the browser cannot run here (a sentence naming what to install), or None."""
    if chromium_path() is None:
        return "no Chromium: install Debian's package (apt-get install chromium)"
    if shutil.which("node") is None:
        return "no node: install Node.js 20 or later"
    absent = [name for name in NPM_PACKAGES if not (REPO / "node_modules" / name / "package.json").exists()]
    if absent:
        return f"npm packages {', '.join(absent)} are not installed: run `npm ci` in {REPO}"
    return None


class BrowserError(RuntimeError):
    """A call that failed in the browser driver; the message is Playwright's."""


class Browser:
    """One headless Chromium and its current page; each method is one driver call (see browser_driver.mjs)."""

    def __init__(self, timeout: float = 300.0):
        self.timeout = timeout
        self.stderr = tempfile.TemporaryFile("w+")  # a file, not a pipe: a chatty driver never blocks on it
        self.process = subprocess.Popen(["node", str(DRIVER), chromium_path()], cwd=REPO, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr)
        self.replies: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.calls = 0

    def _read(self):
        for line in self.process.stdout:
            self.replies.put(json.loads(line))
        self.replies.put(None)

    def call(self, method: str, **params):
        self.calls += 1
        self.process.stdin.write(json.dumps({"id": self.calls, "method": method, "params": params}) + "\n")
        self.process.stdin.flush()
        try:
            reply = self.replies.get(timeout=self.timeout)
        except queue.Empty:
            raise BrowserError(f"{method}: no answer from the browser in {self.timeout:.0f}s") from None
        if reply is None:
            self.stderr.seek(0)
            raise BrowserError(f"{method}: the browser driver exited: {self.stderr.read()[-2000:]}")
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        return reply["result"]

    def __getattr__(self, method):
        if method.startswith("_"):
            raise AttributeError(method)
        return lambda **params: self.call(method, **params)

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
