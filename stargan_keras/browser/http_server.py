"""An HTTP server for the person at this machine, that holds up against web pages and slow sockets.

- `Host` must name this machine (localhost, 127.0.0.1, ::1 or the bound address, on the bound port):
  a web page that re-points its own domain at 127.0.0.1 (DNS rebinding) gets 403, not the model.
- Each connection has its own thread; a request's line and headers must arrive within
  `header_deadline` seconds, and a socket that stays silent for `timeout` seconds is closed, so a few
  hundred half-sent requests neither stall the server nor hold its threads for long.
- Malformed requests (a line longer than 64 KiB, an unknown HTTP version, control bytes in the path)
  get a status line; clients that leave mid-answer are forgotten silently; nothing prints a traceback.
"""

from __future__ import annotations

import http.server
import socket
import sys
import threading
import time
from http import HTTPStatus

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
GONE = (ConnectionError, TimeoutError, socket.timeout)  # a client that left or stalled: nothing to report


class LocalHTTPServer(http.server.ThreadingHTTPServer):
    """A ThreadingHTTPServer with a deep listen queue, a cap on open connections and a deadline for each
    request's headers (enforced by one watchdog thread that shuts the late sockets down)."""

    daemon_threads = True
    request_queue_size = 1024
    max_connections = 1024
    header_deadline = 10.0

    def __init__(self, *args, **kwargs):
        self._deadlines: dict[socket.socket, float | None] = {}
        self._guard = threading.Lock()
        self._closing = threading.Event()
        super().__init__(*args, **kwargs)
        threading.Thread(target=self._watch, name="http-deadlines", daemon=True).start()

    def process_request(self, request, client_address):
        with self._guard:
            full = len(self._deadlines) >= self.max_connections
            if not full:
                self._deadlines[request] = time.monotonic() + self.header_deadline
        if full:
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def arm(self, connection) -> None:
        """Start the clock for the next request's line and headers on `connection`."""
        with self._guard:
            if connection in self._deadlines:
                self._deadlines[connection] = time.monotonic() + self.header_deadline

    def disarm(self, connection) -> None:
        with self._guard:
            if connection in self._deadlines:
                self._deadlines[connection] = None

    def shutdown_request(self, request):
        with self._guard:
            self._deadlines.pop(request, None)
        super().shutdown_request(request)

    def _watch(self) -> None:
        while not self._closing.wait(0.5):
            now = time.monotonic()
            with self._guard:
                late = [sock for sock, deadline in self._deadlines.items() if deadline is not None and deadline < now]
                for sock in late:
                    self._deadlines[sock] = None
            for sock in late:
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # its thread's read returns at once and the thread ends
                except OSError:
                    pass

    def server_close(self):
        self._closing.set()
        super().server_close()

    def handle_error(self, request, client_address):
        """Clients that leave are not news; anything else is one line, not a traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, GONE):
            return
        sys.stderr.write(f"request from {client_address[0]} failed: {type(error).__name__}: {error}\n")

    def allowed_hosts(self) -> set[str]:
        """The Host values of requests meant for this server: its names, bare or with its port."""
        host, port = self.server_address[:2]
        names = {f"[{name}]" if ":" in name else name for name in (*LOCAL_NAMES, host)}
        return names | {f"{name}:{port}" for name in names}


class LocalRequestHandler(http.server.BaseHTTPRequestHandler):
    """Checks every request's Host and path before answering it; silent when the client leaves."""

    timeout = 10  # seconds a socket may stay silent, reading a request or taking an answer
    drain_bytes = 2**20  # after an error status, what is read of a request's rest so the client sees the status
    refused = False

    def handle_one_request(self):
        self.server.arm(self.connection)
        try:
            super().handle_one_request()
        except GONE:
            self.close_connection = True

    def parse_request(self) -> bool:
        self.server.disarm(self.connection)
        if not super().parse_request():
            return False
        if self.request_version == "HTTP/0.9":
            self.send_error(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "HTTP/1.0 or 1.1 only")
            return False
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in self.path):
            self.send_error(HTTPStatus.BAD_REQUEST, "Control characters in the path")
            return False
        host = (self.headers.get("Host") or "").strip().lower()
        if host not in self.server.allowed_hosts():
            self.send_error(HTTPStatus.FORBIDDEN, "This server answers requests for localhost only")
            return False
        return True

    def send_error(self, code, message=None, explain=None):
        self.refused = True
        if self.request_version == "HTTP/0.9":  # what the parser assumes of an unparsed line: no status line
            self.request_version = "HTTP/1.0"
        super().send_error(code, message, explain)

    def finish(self):
        try:
            super().finish()
            if self.refused:
                self._drain()
        except GONE:
            pass

    def _drain(self) -> None:
        """Read what the client is still sending (briefly, boundedly): closing a socket with unread input
        resets the connection, and the client would never see the error status it was sent."""
        self.connection.shutdown(socket.SHUT_WR)
        self.connection.settimeout(1.0)
        left = self.drain_bytes
        while left > 0:
            chunk = self.connection.recv(min(left, 65536))
            if not chunk:
                break
            left -= len(chunk)

    def log_message(self, format, *args):
        pass  # the page's own requests are not news; failures are logged by log_request

    def log_request(self, code="-", size="-"):
        if isinstance(code, int) and code >= 400:
            path = getattr(self, "path", "") or self.requestline[:80]
            sys.stderr.write(f"{self.command or '-'} {path!r}: {int(code)}\n")
