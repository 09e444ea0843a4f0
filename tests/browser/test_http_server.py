"""The demo server holds up: foreign Host headers are refused, malformed requests get a status line,
clients that leave are forgotten, and a burst of half-open connections does not stall it."""

import contextlib
import socket
import threading
import time

import pytest

from stargan_keras.browser.server import DemoModel, make_server
from tests.harness.demo import fake_litert

HALF_OPEN = 300
HOLD_SECONDS = 20.0
SETTLE_SECONDS = 2.0


@contextlib.contextmanager
def serving(tmp_path, model_bytes=b"TFL3"):
    model_file = tmp_path / "m.tflite"
    model_file.write_bytes(model_bytes)
    server = make_server(DemoModel(model_file, {"img_size": 32}), tmp_path, port=0, litert=fake_litert(tmp_path))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def exchange(port, raw: bytes, timeout=10.0) -> bytes:
    """Send raw bytes and read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            if len(answer) > 2**20:
                break
    return answer


def status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1."), answer[:200]
    return int(answer.split(b" ", 2)[1])


def get(port, host=None) -> int:
    host = host or f"127.0.0.1:{port}"
    return status(exchange(port, f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()))


def test_only_requests_for_this_machine_are_answered(tmp_path, capsys):
    with serving(tmp_path) as port:
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"):
            assert get(port, host) == 200, host
        for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.evil.example:{port}", f"localhost:{port + 1}"):
            assert get(port, host) == 403, host
        assert status(exchange(port, b"GET / HTTP/1.1\r\n\r\n")) == 403  # no Host at all
    assert "Traceback" not in capsys.readouterr().err


def test_malformed_requests_get_a_status_line_and_no_traceback(tmp_path, capsys):
    with serving(tmp_path) as port:
        host = f"Host: 127.0.0.1:{port}\r\n".encode()
        cases = {
            b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n" + host + b"\r\n": 414,
            b"GET / HTTP/9.9\r\n" + host + b"\r\n": 505,
            b"GET /litert/core/dist/a\x00b HTTP/1.1\r\n" + host + b"\r\n": 400,
            b"GET /\x00 HTTP/1.1\r\n" + host + b"\r\n": 400,
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n": 400,  # TLS spoken to plain HTTP
        }
        for raw, expected in cases.items():
            assert status(exchange(port, raw)) == expected, raw[:40]
        assert get(port) == 200
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Error" not in err, err


def test_clients_that_leave_mid_download_are_ignored(tmp_path, capsys):
    with serving(tmp_path, model_bytes=bytes(16 * 2**20)) as port:
        for _ in range(5):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(f"GET /model.tflite HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            sock.recv(1000)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # reset
            sock.close()
        time.sleep(1.0)
        assert get(port) == 200
    err = capsys.readouterr().err
    assert "Traceback" not in err and "BrokenPipe" not in err and "ConnectionReset" not in err, err


@pytest.mark.slow
def test_half_open_connections_neither_stall_the_server_nor_stay_open(tmp_path, capsys):
    with serving(tmp_path) as port:
        sockets = []
        try:
            for _ in range(HALF_OPEN):
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Slow: ".encode())  # never finished
                sockets.append(sock)
            time.sleep(SETTLE_SECONDS)  # the server accepts the burst (a thread each), then they are only held
            began, latencies = time.monotonic(), []
            while time.monotonic() - began < HOLD_SECONDS:
                start = time.perf_counter()
                assert get(port) == 200
                latencies.append(time.perf_counter() - start)
                time.sleep(1.0)
            assert max(latencies) < 1.0, latencies
            closed = 0
            for sock in sockets:  # past the header deadline, the server has hung up on every one of them
                sock.settimeout(2.0)
                with contextlib.suppress(OSError):
                    closed += sock.recv(100) == b""
            assert closed == HALF_OPEN
        finally:
            for sock in sockets:
                sock.close()
    assert "Traceback" not in capsys.readouterr().err
