"""Keep TensorFlow's C++ log lines off the console of every command, unless the user asks for them.

TensorFlow writes them to file descriptor 2 from C++: CUDA probes on a machine without a GPU, CPU
feature notes, oneDNN notes. Most obey TF_CPP_MIN_LOG_LEVEL, set here to 3 (fatal only) before
TensorFlow is first imported; a few are written while its libraries load, before that setting is
read, so the import itself runs with descriptor 2 captured and only the lines that are not
TensorFlow's log lines are passed on (a Python warning raised during the import stays visible).

A TF_CPP_MIN_LOG_LEVEL the user set, `--debug` or STARGAN_KERAS_DEBUG=1 leave TensorFlow's logging
as TensorFlow has it.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

from stargan_keras.core.errors import debugging

LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
# glog/absl lines ("E0000 00:00:1796637515.488241  8743 cuda_platform.cc:52] ..."), absl's
# notice before its own initialisation, and the continuation line of the CPU feature note.
LOG_LINE = re.compile(r"^[IWEF]\d{4} |\.cc:\d+\] |^WARNING: All log messages before absl::InitializeLog|"
                      r"^To enable the following instructions:")


def is_log_line(line: str) -> bool:
    return bool(LOG_LINE.search(line))


def wanted(argv=None, environ=None) -> bool:
    """Silence TensorFlow unless the user set its level or asked for debugging output."""
    environ = os.environ if environ is None else environ
    return LEVEL_VARIABLE not in environ and not debugging(sys.argv if argv is None else argv)


def install() -> None:
    """Called by `stargan_keras/__init__.py`, so before any command imports TensorFlow."""
    if not wanted():
        return
    os.environ[LEVEL_VARIABLE] = "3"
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport())


@contextlib.contextmanager
def filtered_stderr():
    """Capture file descriptor 2 in this block, then write back what is not a TensorFlow log line."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (a daemon): nothing to keep clean
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            sys.stderr.write("".join(line for line in text.splitlines(keepends=True) if not is_log_line(line)))
            sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    """TensorFlow's own loader, its `exec_module` (the import of the package) run in `filtered_stderr`."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = self._loader
        module.__spec__.loader = self._loader
        with filtered_stderr():
            self._loader.exec_module(module)

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` once, through the other finders, and hands it a quiet loader."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec
