"""The edge-triggered echo server answers every byte, on every backend, and stops cleanly."""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

import portaio

if sys.platform == "win32":  # pragma: no cover
    pytest.skip("portaio echo is POSIX-only (fork, SO_REUSEPORT, signal masks)", allow_module_level=True)

from portaio.echo import EchoServer, make_listener


@pytest.fixture
def server(backend: str) -> Iterator[tuple[EchoServer, tuple[str, int]]]:
    listener = make_listener("127.0.0.1", 0)
    srv = EchoServer(listener, backend)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv, listener.getsockname()
    finally:
        srv.stop()
        thread.join(5)
        assert not thread.is_alive()
        srv.close()
        listener.close()


def _echo_many(address: tuple[str, int], clients: int, rounds: int, size: int) -> None:
    """Drive *clients* connections at once with a selector, checking every byte."""
    socks = [socket.create_connection(address, timeout=5) for _ in range(clients)]
    try:
        expected = {}
        received = {}
        with selectors.DefaultSelector() as sel:
            for i, s in enumerate(socks):
                s.setblocking(False)
                payload = (f"[{i}:".encode() + os.urandom(size)) * rounds
                expected[s] = payload
                received[s] = bytearray()
                s.sendall(payload)  # small: fits the socket buffers
                sel.register(s, selectors.EVENT_READ)
            remaining = set(socks)
            while remaining:
                ready = sel.select(5)
                assert ready, "the echo server stopped answering"
                for key, _ in ready:
                    s = key.fileobj
                    data = s.recv(1 << 16)
                    assert data, "the echo server closed a connection early"
                    received[s] += data
                    if len(received[s]) >= len(expected[s]):
                        remaining.discard(s)
                        sel.unregister(s)
        for s in socks:
            assert bytes(received[s]) == expected[s]
    finally:
        for s in socks:
            s.close()


def test_many_clients_byte_exact(server: tuple[EchoServer, tuple[str, int]]) -> None:
    _echo_many(server[1], clients=100, rounds=3, size=200)


def _read_exactly(s: socket.socket, size: int) -> bytearray:
    buf = bytearray()
    while len(buf) < size:
        chunk = s.recv(1 << 20)
        assert chunk, f"EOF after {len(buf)} of {size} bytes"
        buf += chunk
    return buf


def test_large_transfer_buffers_and_flushes(server: tuple[EchoServer, tuple[str, int]]) -> None:
    """The client sends 8 MB before reading: the server's writes hit EAGAIN and are buffered."""
    payload = os.urandom(8 << 20)
    with socket.create_connection(server[1], timeout=10) as s:
        sender = threading.Thread(target=s.sendall, args=(payload,))
        sender.start()
        buf = _read_exactly(s, len(payload))
        sender.join()
    assert buf == payload


def test_client_that_does_not_read_is_paused_then_resumed(
    server: tuple[EchoServer, tuple[str, int]],
) -> None:
    """Past the high-water mark the server stops reading; reading the echo resumes it."""
    srv, address = server
    payload = os.urandom(16 << 20)
    with socket.create_connection(address, timeout=10) as s:
        sender = threading.Thread(target=s.sendall, args=(payload,))
        sender.start()
        deadline = time.monotonic() + 5
        while not any(c.paused for c in list(srv._conns.values())):
            assert time.monotonic() < deadline, "the server never paused the reader"
            time.sleep(0.005)
        buf = _read_exactly(s, len(payload))
        sender.join()
    assert buf == payload


def test_half_close_gets_everything_then_eof(server: tuple[EchoServer, tuple[str, int]]) -> None:
    with socket.create_connection(server[1], timeout=5) as s:
        s.sendall(b"last words")
        s.shutdown(socket.SHUT_WR)
        buf = b""
        while chunk := s.recv(4096):
            buf += chunk
    assert buf == b"last words"


def test_hangup_closes_the_connection(server: tuple[EchoServer, tuple[str, int]]) -> None:
    srv, address = server
    socks = [socket.create_connection(address, timeout=5) for _ in range(10)]
    for s in socks:
        s.sendall(b"x")
        assert s.recv(1) == b"x"
    assert srv.connections == 10
    for s in socks[:5]:
        s.close()
    reset = socks[5]
    reset.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    reset.close()  # RST
    # The last client's round trip proves the server has run past the hang-ups.
    for _ in range(100):
        socks[9].sendall(b"y")
        assert socks[9].recv(1) == b"y"
        if srv.connections == 4:
            break
    assert srv.connections == 4
    for s in socks[6:]:
        s.close()


def _start(*args: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "portaio.echo", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # ``-m`` puts the working directory first on sys.path: run from where
        # the portaio under test was imported (the source tree or site-packages).
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(portaio.__file__))),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    assert match, f"no address printed: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
    return proc, int(match.group(1))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_command_prints_address_and_stops_on_signal(backend: str, sig: int) -> None:
    proc, port = _start("--backend", backend)
    try:
        _echo_many(("127.0.0.1", port), clients=20, rounds=2, size=100)
        proc.send_signal(sig)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("mode", ["reuseport", "exclusive"])
def test_workers(mode: str) -> None:
    if mode == "exclusive" and not portaio.backend_class().capabilities.exclusive:
        pytest.skip(f"the default backend {portaio.default_backend()} has no EXCLUSIVE mode")
    proc, port = _start("--workers", "2", "--mode", mode)
    try:
        _echo_many(("127.0.0.1", port), clients=50, rounds=2, size=100)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
