"""Commands forked from a warm interpreter, for tests that start many of them.

A fresh `python -m stargan_keras.train` spends about as long importing TensorFlow and the package as a tiny run
spends training. Tests that start commands for what the commands do (training that is killed, resumes, runs on two
workers) start them here instead: a server process imports TensorFlow and every module of the package once, then
forks a child per command that runs it as `python -m module args` or `python script args` would: its own argv,
working directory, environment, stdin/stdout/stderr pipes, signals and exit status (negative for a signal, as
`subprocess` reports it).

What the child shares with the server is what the import did: TensorFlow's C++ log level and oneDNN switch, the
path. A request must therefore have the server's values of `IMPORT_TIME` variables, and tests about what a fresh
interpreter prints or sets up at import (tests/test_console.py) start real subprocesses.

Run as `python -m tests.harness.zygote SOCKET STATUS_DIR`: the server (started by `Zygote`).
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import pkgutil
import runpy
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from tests.harness.commands import REPO, TIMEOUT, user_env

IMPORT_TIME = ("PYTHONPATH", "TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS", "STARGAN_KERAS_DEBUG")
POLL = 0.02  # seconds between looks at a child's status


# -- the server ----------------------------------------------------------------------------------------------------
def _preload() -> None:
    """Every module of the package (TensorFlow, Keras and tf.data with them), as the commands would import them."""
    import stargan_keras

    for module in pkgutil.walk_packages(stargan_keras.__path__, "stargan_keras."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)


def _exit_code(code) -> int:
    """What the interpreter exits with for `SystemExit(code)`."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _run_child(request: dict, fds: list[int]) -> None:
    """In the forked child: become the requested command, then exit as its interpreter would. Never returns."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        tempfile.tempdir = None  # chosen from TMPDIR again, as a fresh interpreter would
        argv = request["argv"]
        from stargan_keras.core import quiet

        sys.argv = [argv[0], *argv[2:]] if argv[0] == "-m" else list(argv)  # as the interpreter sets it
        quiet.install()  # the package's import-time setting, for this child's environment and flags
        if argv[0] == "-m":
            sys.path[0] = os.getcwd()
            sys.modules.pop(argv[1], None)  # preloaded as a module; it runs afresh as __main__
            runpy._run_module_as_main(argv[1])
        else:
            sys.path[0] = str(Path(argv[0]).resolve().parent)
            runpy.run_path(argv[0], run_name="__main__")
        code = 0
    except SystemExit as stop:
        code = _exit_code(stop.code)
    except KeyboardInterrupt:
        traceback.print_exc()
        code = 128 + signal.SIGINT
    except BaseException:  # noqa: B036 - the interpreter's own behaviour: print it, exit 1
        traceback.print_exc()
    finally:
        threading._shutdown()
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


def _reap(children: set[int], status_dir: Path) -> None:
    for pid in list(children):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            children.discard(pid)
            partial = status_dir / f"{pid}.partial"
            partial.write_text(str(os.waitstatus_to_exitcode(status)))
            partial.rename(status_dir / str(pid))


def serve(socket_path: str, status_dir: str) -> None:
    _preload()
    parent = os.getppid()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(16)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    children: set[int] = set()
    print("ready", flush=True)
    try:
        while os.getppid() == parent:  # the tests' process is gone: stop
            _reap(children, Path(status_dir))
            if not selector.select(timeout=POLL):
                continue
            connection, _ = listener.accept()
            with connection:
                message, fds, _, _ = socket.recv_fds(connection, 1 << 20, 3)
                request = json.loads(message)
                if request.get("stop"):
                    break
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    listener.close()
                    connection.close()
                    _run_child(request, fds)
                for fd in fds:
                    os.close(fd)
                children.add(pid)
                connection.sendall(f"{pid}\n".encode())
    finally:
        for pid in children:
            os.kill(pid, signal.SIGKILL)


# -- the tests' side -----------------------------------------------------------------------------------------------
class Child:
    """A forked command, with the parts of `subprocess.Popen` the tests use (text pipes)."""

    def __init__(self, argv, pid: int, stdout: int, stderr: int, status: Path):
        self.args, self.pid, self._status = argv, pid, status
        self.stdout = open(stdout, encoding="utf-8", errors="replace")
        self.stderr = open(stderr, encoding="utf-8", errors="replace")
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and self._status.exists():
            self.returncode = int(self._status.read_text())
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(POLL)
        return self.returncode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Both pipes read to their end (by threads, so that neither fills), then the exit status."""
        texts = {}

        def read(name, stream):
            with stream:
                texts[name] = stream.read()

        readers = [threading.Thread(target=read, args=item, daemon=True)
                   for item in (("out", self.stdout), ("err", self.stderr))]
        for reader in readers:
            reader.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        for reader in readers:
            reader.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if reader.is_alive():
                raise subprocess.TimeoutExpired(self.args, timeout)
        self.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return texts["out"], texts["err"]

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Zygote:
    """The server, started on first use with `env` (a user's environment by default) and stopped by `close`."""

    def __init__(self, env: dict | None = None):
        self.env = user_env() if env is None else env
        self._folder = Path(tempfile.mkdtemp(prefix="zygote-"))
        self._socket = str(self._folder / "socket")
        self._server: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def _ensure_started(self) -> None:
        with self._lock:
            if self._server is not None:
                return
            (self._folder / "status").mkdir()
            self._server = subprocess.Popen([sys.executable, "-m", "tests.harness.zygote", self._socket,
                                             str(self._folder / "status")],
                                            cwd=REPO, env=self.env, stdout=subprocess.PIPE, text=True)
            line = self._server.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"the zygote server did not start (exit {self._server.wait()})")

    def _check(self, env: dict, argv) -> None:
        for key in IMPORT_TIME:
            if env.get(key) != self.env.get(key):
                raise ValueError(f"{key}={env.get(key)!r} differs from the zygote's {self.env.get(key)!r}: "
                                 "TensorFlow read it at import; start a real subprocess instead")
        if "--debug" in argv:
            raise ValueError("--debug changes the import-time log setup: start a real subprocess instead")

    def popen(self, argv: list[str], *, cwd, env: dict | None = None) -> Child:
        """`python *argv` (`["-m", module, ...]` or `[script, ...]`) in `cwd`, stdout and stderr through pipes."""
        env = self.env if env is None else env
        argv = [str(part) for part in argv]
        self._check(env, argv)
        self._ensure_started()
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        stdin = os.open(os.devnull, os.O_RDONLY)
        request = json.dumps({"argv": argv, "cwd": str(Path(cwd).resolve()), "env": env}).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
                connection.connect(self._socket)
                socket.send_fds(connection, [request], [stdin, out_write, err_write])
                pid = int(connection.makefile().readline())
        finally:
            for fd in (stdin, out_write, err_write):
                os.close(fd)
        return Child(argv, pid, out_read, err_read, self._folder / "status" / str(pid))

    def run(self, argv: list[str], *, cwd, env: dict | None = None,
            timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
        """Like `subprocess.run(capture_output=True, text=True)`."""
        child = self.popen(argv, cwd=cwd, env=env)
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            raise
        return subprocess.CompletedProcess(argv, child.returncode, out, err)

    def close(self) -> None:
        if self._server is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
                connection.connect(self._socket)
                socket.send_fds(connection, [json.dumps({"stop": True}).encode()], [])
        except OSError:
            self._server.kill()
        self._server.wait(timeout=60)
        self._server.stdout.close()


if __name__ == "__main__":
    serve(*sys.argv[1:3])
