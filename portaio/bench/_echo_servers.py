"""The servers portaio's echo server is measured against (run as ``python -m``).

``python -m portaio.bench._echo_servers KIND`` listens on 127.0.0.1 (a free
port), prints ``listening on 127.0.0.1:PORT`` and echoes until killed.  KIND is
``epoll`` (a hand-written level-triggered ``select.epoll`` loop) or
``{asyncio,portaio-asyncio,uvloop}-{protocol,streams}``.
"""

from __future__ import annotations

import asyncio
import importlib
import select
import socket
import sys
from collections.abc import Callable
from typing import Any

if sys.platform == "win32":  # pragma: no cover
    raise ImportError("the echo benchmark servers are POSIX-only (select.epoll)")

__all__ = ["KINDS", "main"]


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    print(f"listening on 127.0.0.1:{sock.getsockname()[1]}", flush=True)
    return sock


def _epoll_loop() -> None:
    """The reference: what one writes by hand with select.epoll, level-triggered."""
    listener = _listener()
    listener.setblocking(False)
    lfd = listener.fileno()
    ep = select.epoll()
    ep.register(lfd, select.EPOLLIN)
    conns: dict[int, socket.socket] = {}
    pending: dict[int, bytes] = {}
    while True:
        for fd, ev in ep.poll():
            if fd == lfd:
                while True:
                    try:
                        s, _ = listener.accept()
                    except BlockingIOError:
                        break
                    s.setblocking(False)
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    conns[s.fileno()] = s
                    ep.register(s.fileno(), select.EPOLLIN)
                continue
            s = conns[fd]
            if ev & select.EPOLLOUT:
                data = pending.pop(fd)
                n = s.send(data)
                if n < len(data):
                    pending[fd] = data[n:]
                else:
                    ep.modify(fd, select.EPOLLIN)
                continue
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data:
                ep.unregister(fd)
                del conns[fd]
                pending.pop(fd, None)
                s.close()
                continue
            try:
                n = s.send(data)
            except BlockingIOError:
                n = 0
            if n < len(data):
                pending[fd] = data[n:]
                ep.modify(fd, select.EPOLLOUT)


class _EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def _streams_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _serve(style: str) -> None:
    sock = _listener()
    loop = asyncio.get_running_loop()
    if style == "protocol":
        server = await loop.create_server(_EchoProtocol, sock=sock)
    else:
        server = await asyncio.start_server(_streams_client, sock=sock)
    async with server:
        await server.serve_forever()


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "asyncio":
        return asyncio.new_event_loop
    if name == "portaio-asyncio":
        from .. import asyncio as portaio_asyncio

        return portaio_asyncio.new_event_loop
    uvloop = importlib.import_module("uvloop")  # optional: measured for reference when installed
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


KINDS = ["epoll"] + [
    f"{loop}-{style}"
    for loop in ("asyncio", "portaio-asyncio", "uvloop")
    for style in ("protocol", "streams")
]


def main(argv: list[str] | None = None) -> int:
    """Run the server named by ``argv[0]``."""
    args = sys.argv[1:] if argv is None else argv
    kind = args[0] if args else "epoll"
    if kind == "epoll":
        _epoll_loop()
        return 0
    loop_name, style = kind.rsplit("-", 1)
    loop = _loop_factory(loop_name)()
    try:
        loop.run_until_complete(_serve(style))
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
