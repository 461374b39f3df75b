"""Ordinary asyncio programs run unchanged on portaio.asyncio, on every backend."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

import portaio.asyncio as pasyncio
from portaio.selectors import PortaioSelector

T = TypeVar("T")


@pytest.fixture
def run(backend: str) -> Callable[[Coroutine[Any, Any, T]], T]:
    def runner(coro: Coroutine[Any, Any, T]) -> T:
        return pasyncio.run(asyncio.wait_for(coro, 10), backend=backend)

    return runner


def test_the_loop_is_portaio(run: Callable[..., Any], backend: str) -> None:
    async def main() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    loop = run(main())
    assert isinstance(loop, pasyncio.Loop)
    assert isinstance(loop, asyncio.SelectorEventLoop)
    assert loop.portaio_backend == backend


def test_install_and_policy(backend: str) -> None:
    old = asyncio.get_event_loop_policy()
    try:
        pasyncio.install(backend)
        assert isinstance(asyncio.get_event_loop_policy(), pasyncio.EventLoopPolicy)

        async def main() -> str:
            loop = asyncio.get_running_loop()
            assert isinstance(loop, pasyncio.Loop)
            selector = loop._selector  # type: ignore[attr-defined]
            assert isinstance(selector, PortaioSelector)
            return selector.backend

        assert asyncio.run(main()) == backend
    finally:
        asyncio.set_event_loop_policy(old)
    loop = pasyncio.new_event_loop(backend)
    try:
        assert loop.run_until_complete(asyncio.sleep(0, "done")) == "done"
    finally:
        loop.close()


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


def test_streams_echo(run: Callable[..., Any]) -> None:
    async def main() -> bytes:
        server = await asyncio.start_server(_echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            payload = os.urandom(1 << 20)  # large enough to hit EAGAIN and drain()
            writer.write(payload)
            await writer.drain()
            got = await reader.readexactly(len(payload))
            assert got == payload
            writer.write(b"bye")
            writer.write_eof()
            rest = await reader.read()
            writer.close()
            await writer.wait_closed()
            return rest

    assert run(main()) == b"bye"


def test_server_with_many_clients(run: Callable[..., Any]) -> None:
    clients = 100

    async def client(port: int, i: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        message = f"client {i} ".encode() * (i + 1)
        out = b""
        for _ in range(5):
            writer.write(message)
            out += await reader.readexactly(len(message))
        writer.close()
        await writer.wait_closed()
        return out

    async def main() -> None:
        server = await asyncio.start_server(_echo, "127.0.0.1", 0, backlog=clients)
        port = server.sockets[0].getsockname()[1]
        async with server:
            results = await asyncio.gather(*(client(port, i) for i in range(clients)))
        for i, got in enumerate(results):
            assert got == (f"client {i} ".encode() * (i + 1)) * 5

    run(main())


def test_subprocess(run: Callable[..., Any]) -> None:
    async def main() -> tuple[bytes, bytes, int]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys; data = sys.stdin.read(); print(data.upper()); sys.stderr.write('err'); sys.exit(3)",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate(b"hello portaio")
        return out, err, await proc.wait()

    out, err, code = run(main())
    assert out.strip() == b"HELLO PORTAIO"
    assert err == b"err"
    assert code == 3


def test_subprocess_shell(run: Callable[..., Any]) -> None:
    async def main() -> bytes:
        proc = await asyncio.create_subprocess_shell("echo one; echo two", stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        return out

    assert run(main()) == b"one\ntwo\n"


def test_signal_handler(run: Callable[..., Any]) -> None:
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        got: list[int] = []
        done = loop.create_future()

        def handler(signum: int) -> None:
            got.append(signum)
            if len(got) == 2:
                done.set_result(None)

        loop.add_signal_handler(signal.SIGUSR1, handler, signal.SIGUSR1)
        try:
            os.kill(os.getpid(), signal.SIGUSR1)
            await asyncio.sleep(0.01)
            os.kill(os.getpid(), signal.SIGUSR1)
            await asyncio.wait_for(done, 5)
        finally:
            assert loop.remove_signal_handler(signal.SIGUSR1)
        return got

    assert run(main()) == [signal.SIGUSR1, signal.SIGUSR1]


def test_wait_for_timeouts(run: Callable[..., Any]) -> None:
    async def main() -> None:
        t0 = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.sleep(10), 0.05)
        elapsed = time.monotonic() - t0
        assert 0.05 <= elapsed < 2
        # a stream read that never gets data times out too
        accepted: list[asyncio.StreamWriter] = []

        def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)  # say nothing, but close it at the end (not the GC)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        async with server:
            reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(reader.read(1), 0.05)
            writer.close()
            await writer.wait_closed()
            for other in accepted:
                other.close()
                await other.wait_closed()
        t0 = time.monotonic()
        await asyncio.sleep(0.02)
        assert time.monotonic() - t0 >= 0.02

    run(main())


def test_call_later_order(run: Callable[..., Any]) -> None:
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        order: list[int] = []
        done = loop.create_future()
        for i, delay in enumerate((0.03, 0.01, 0.02)):
            loop.call_later(delay, order.append, i)
        loop.call_later(0.04, done.set_result, None)
        await done
        return order

    assert run(main()) == [1, 2, 0]


def test_sock_calls(run: Callable[..., Any]) -> None:
    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        client = socket.socket()
        client.setblocking(False)
        try:
            connect = asyncio.ensure_future(loop.sock_connect(client, listener.getsockname()))
            conn, _ = await loop.sock_accept(listener)
            await connect
            conn.setblocking(False)
            with conn:
                payload = os.urandom(300_000)
                send = asyncio.ensure_future(loop.sock_sendall(client, payload))
                buf = bytearray()
                while len(buf) < len(payload):
                    buf += await loop.sock_recv(conn, 65536)
                await send
                assert bytes(buf) == payload
                small = bytearray(16)
                await loop.sock_sendall(conn, b"pong")
                n = await loop.sock_recv_into(client, small)
                return bytes(small[:n])
        finally:
            client.close()
            listener.close()

    assert run(main()) == b"pong"


def test_sendfile(run: Callable[..., Any]) -> None:
    payload = os.urandom(2 << 20)

    async def main() -> tuple[int, bytes]:
        received = bytearray()
        done = asyncio.Event()

        async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(1 << 16):
                received.extend(data)
            done.set()
            writer.close()

        server = await asyncio.start_server(sink, "127.0.0.1", 0)
        async with server:
            _reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
            with tempfile.TemporaryFile() as f:
                f.write(payload)
                f.flush()
                f.seek(0)
                sent = await asyncio.get_running_loop().sendfile(writer.transport, f)
            writer.write_eof()
            await done.wait()
            writer.close()
            await writer.wait_closed()
        return sent, bytes(received)

    sent, received = run(main())
    assert sent == len(payload)
    assert received == payload


def test_sock_sendfile(run: Callable[..., Any]) -> None:
    payload = os.urandom(1 << 20)

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        try:
            with tempfile.TemporaryFile() as f:
                f.write(payload)
                f.seek(0)
                send = asyncio.ensure_future(loop.sock_sendfile(a, f))
                buf = bytearray()
                while len(buf) < len(payload):
                    buf += await loop.sock_recv(b, 1 << 16)
                assert await send == len(payload)
            return bytes(buf)
        finally:
            a.close()
            b.close()

    assert run(main()) == payload


def test_run_in_executor_and_call_soon_threadsafe(run: Callable[..., Any]) -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        await loop.run_in_executor(None, lambda: loop.call_soon_threadsafe(fut.set_result, 42))
        return await fut

    assert run(main()) == 42
