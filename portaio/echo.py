"""``portaio echo``: an edge-triggered TCP echo server on the :class:`~portaio.Poller`.

The listener is non-blocking and accepts until ``EAGAIN``.  Each connection is
registered once for ``READABLE | WRITABLE | RDHUP | EDGE``: a read event drains
the socket, a write that hits ``EAGAIN`` keeps the rest in a buffer that the
next ``WRITABLE`` edge flushes, and a hang-up closes the connection cleanly.
Backends without edge mode (poll, select) run the same server level-triggered,
asking for ``WRITABLE`` only while a buffer waits.

``--workers N`` forks N processes (0: one per core), each with its own poller:
``--mode reuseport`` gives each its own ``SO_REUSEPORT`` listener (the kernel
spreads connections), ``--mode exclusive`` shares one listener registered with
``EXCLUSIVE`` so that a connection wakes one worker.  Run it as
``portaio echo`` or ``python -m portaio.echo``.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import sys
from collections.abc import Sequence
from types import FrameType

from ._flags import EDGE, ERROR, EXCLUSIVE, HANGUP, RDHUP, READABLE, WRITABLE
from ._poller import Poller
from .backends import backend_class

if sys.platform == "win32":  # pragma: no cover
    raise ImportError("portaio echo is POSIX-only (fork, SO_REUSEPORT, signal masks)")

__all__ = ["EchoServer", "build_parser", "main", "make_listener"]

_BUF = 65536
_HIGH_WATER = 1 << 20  # stop reading a client that does not read its echo
# Plain ints: an IntFlag operand would send every ``&`` through enum code.
_READABLE, _WRITABLE, _RDHUP = int(READABLE), int(WRITABLE), int(RDHUP)
_CLOSING = int(HANGUP | ERROR)
_READISH = _READABLE | _RDHUP | _CLOSING
_PEER_GONE = _RDHUP | _CLOSING
_FLUSH_ON = _WRITABLE | _CLOSING


class _Conn:
    __slots__ = ("eof", "fd", "paused", "pending", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.pending: bytearray | None = None
        self.eof = False
        self.paused = False


class EchoServer:
    """Echo every byte received on *listener*'s connections, on one poller.

    *exclusive* registers the listener with ``EXCLUSIVE`` (for a listener
    shared between processes).  :meth:`serve_forever` runs until :meth:`stop`
    (safe from a signal handler or another thread).
    """

    def __init__(self, listener: socket.socket, backend: str | None = None, exclusive: bool = False) -> None:
        listener.setblocking(False)
        self.listener = listener
        self.poller = Poller(backend)
        caps = self.poller.capabilities
        self.edge = caps.edge
        rdhup = RDHUP if caps.rdhup else 0
        self._conn_interest = int(READABLE | WRITABLE | rdhup | EDGE) if self.edge else int(READABLE | rdhup)
        self._listen_interest = int(READABLE | (EXCLUSIVE if exclusive else 0))
        self._conns: dict[int, _Conn] = {}
        self._accept_paused = False
        self._running = False
        self.accepted = 0
        self._stop_r, self._stop_w = os.pipe()
        os.set_blocking(self._stop_r, False)
        os.set_blocking(self._stop_w, False)
        self.poller.register(self._stop_r, READABLE, self)
        self.poller.register(listener.fileno(), self._listen_interest, None)

    @property
    def connections(self) -> int:
        """How many connections are open now."""
        return len(self._conns)

    def stop(self) -> None:
        """Make :meth:`serve_forever` return (from any thread or a signal handler)."""
        try:
            os.write(self._stop_w, b"x")
        except OSError:
            pass  # already stopping (pipe full) or closed

    def close(self) -> None:
        """Close every connection, the poller and the stop pipe (not the listener)."""
        for conn in list(self._conns.values()):
            self._close(conn)
        self.poller.close()
        for fd in (self._stop_r, self._stop_w):
            try:
                os.close(fd)
            except OSError:
                pass

    # ---------------------------------------------------------------- loop
    def serve_forever(self) -> None:
        """Accept and echo until :meth:`stop` is called."""
        poll = self.poller.poll
        read = self._read
        self._running = True
        while self._running:
            for ev in poll():
                conn = ev[2]
                if conn.__class__ is not _Conn:
                    if conn is None:
                        self._accept()
                    else:
                        self._running = False
                    continue
                flags = ev[1]
                if conn.pending is not None:
                    if flags & _FLUSH_ON:
                        self._flush(conn)
                    if flags & _READISH and not conn.paused and conn.fd in self._conns:
                        read(conn, flags)
                    continue
                if not flags & _READISH:
                    continue
                # The common case inline: one short read, echoed whole.
                sock = conn.sock
                try:
                    data = sock.recv(_BUF)
                except BlockingIOError:
                    continue
                except OSError:
                    self._close(conn)
                    continue
                if data and len(data) < _BUF and not flags & _PEER_GONE:
                    try:
                        sent = sock.send(data)
                    except BlockingIOError:
                        sent = 0
                    except OSError:
                        self._close(conn)
                        continue
                    if sent != len(data):
                        self._keep(conn, data, sent)
                    continue
                read(conn, flags, data)

    def _accept(self) -> None:
        listener = self.listener
        register = self.poller.register
        interest = self._conn_interest
        conns = self._conns
        while True:
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                return
            except OSError as err:
                if err.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Out of fds: stop accepting until a connection closes,
                    # or a level-triggered listener would spin.
                    self.poller.unregister(listener.fileno())
                    self._accept_paused = True
                    return
                if err.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                    continue
                raise
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(sock)
            conns[conn.fd] = conn
            register(conn.fd, interest, conn)
            self.accepted += 1

    def _keep(self, conn: _Conn, data: bytes, sent: int) -> None:
        """The kernel took *sent* bytes of *data*: keep the rest for WRITABLE."""
        conn.pending = bytearray(data[sent:])
        if not self.edge:
            self.poller.modify(conn.fd, self._conn_interest | _WRITABLE, conn)

    def _read(self, conn: _Conn, flags: int, first: bytes | None = None) -> None:
        sock = conn.sock
        # epoll(7): on a stream socket a short read means the buffer was
        # drained; any later data is a new edge.  Not so when the peer closed:
        # then read on to the end of file, which sends no further edge.
        short_read_drains = not flags & _PEER_GONE
        while True:
            if first is not None:
                data, first = first, None
            else:
                try:
                    data = sock.recv(_BUF)
                except BlockingIOError:
                    return
                except OSError:
                    self._close(conn)
                    return
            if not data:
                conn.eof = True
                if conn.pending is None:
                    self._close(conn)
                return
            pending = conn.pending
            if pending is None:
                try:
                    sent = sock.send(data)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    self._close(conn)
                    return
                if sent != len(data):
                    self._keep(conn, data, sent)
            else:
                pending += data
                if len(pending) > _HIGH_WATER:
                    # The client does not read its echo: stop reading it until
                    # the buffer drains (an edge server resumes the read then).
                    conn.paused = True
                    if not self.edge:
                        self.poller.modify(conn.fd, _WRITABLE, conn)
                    return
            if short_read_drains and len(data) < _BUF:
                return

    def _flush(self, conn: _Conn) -> None:
        pending = conn.pending
        assert pending is not None
        try:
            sent = conn.sock.send(pending)
        except BlockingIOError:
            return
        except OSError:
            self._close(conn)
            return
        del pending[:sent]
        if pending:
            return
        conn.pending = None
        if conn.eof:
            self._close(conn)
            return
        if not self.edge:
            self.poller.modify(conn.fd, self._conn_interest, conn)
        if conn.paused:
            conn.paused = False
            self._read(conn, _READABLE)

    def _close(self, conn: _Conn) -> None:
        if self._conns.get(conn.fd) is not conn:
            return  # closed already (its number may name a newer connection)
        del self._conns[conn.fd]
        try:
            self.poller.unregister(conn.fd)
        except KeyError:
            pass
        conn.sock.close()
        if self._accept_paused:
            self._accept_paused = False
            self.poller.register(self.listener.fileno(), self._listen_interest, None)


def make_listener(host: str, port: int, reuseport: bool = False, backlog: int = 4096) -> socket.socket:
    """A non-blocking listening TCP socket on *host*:*port* (``SO_REUSEPORT`` if asked)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def build_parser() -> argparse.ArgumentParser:
    """The options of ``portaio echo``."""
    parser = argparse.ArgumentParser(prog="portaio echo", description="An edge-triggered TCP echo server.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8888, help="port (default 8888; 0 picks a free one)")
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes (default 1; 0: one per core)"
    )
    parser.add_argument(
        "--mode",
        choices=("reuseport", "exclusive"),
        default="reuseport",
        help="with several workers: one SO_REUSEPORT listener each, or one shared EXCLUSIVE listener",
    )
    parser.add_argument("--backend", default=None, help="poller backend (default: the best here)")
    parser.add_argument("--backlog", type=int, default=4096, help="listen backlog (default 4096)")
    return parser


_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _serve(
    listener: socket.socket,
    backend: str | None,
    exclusive: bool,
    mask: set[int | signal.Signals] | None = None,
) -> int:
    server = EchoServer(listener, backend, exclusive)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        server.stop()

    old = {sig: signal.signal(sig, on_signal) for sig in _STOP_SIGNALS}
    if mask is not None:
        # A worker starts with the stop signals blocked (see _run_workers):
        # one that came meanwhile is delivered now, to the handler above.
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    try:
        server.serve_forever()
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        server.close()
    return 0


def _run_workers(listeners: list[socket.socket], backend: str | None, exclusive: bool) -> int:
    children: list[int] = []
    # Block the stop signals until each process has its handler: a SIGTERM that
    # reaches the parent before it can forward it, or a worker before it can
    # stop cleanly, is held back instead of killing it by default.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    for i, listener in enumerate(listeners):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            status = 1
            try:
                for j, other in enumerate(listeners):
                    if j != i and other is not listener:
                        other.close()
                status = _serve(listener, backend, exclusive, mask)
            finally:
                os._exit(status)
        children.append(pid)
    stopping = False

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    old = {sig: signal.signal(sig, forward) for sig in _STOP_SIGNALS}
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    status = 0
    try:
        for pid in children:
            _, code = os.waitpid(pid, 0)  # retried on EINTR after the handler runs
            if os.waitstatus_to_exitcode(code) != 0 and not stopping:
                status = 1
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        closed = set()
        for listener in listeners:
            if id(listener) not in closed:
                closed.add(id(listener))
                listener.close()
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run the echo server until SIGINT or SIGTERM; returns the exit status."""
    args = build_parser().parse_args(argv)
    workers = args.workers or os.cpu_count() or 1
    exclusive = args.mode == "exclusive" and workers > 1
    try:
        cls = backend_class(args.backend)
    except Exception as err:
        print(f"portaio echo: {err}", file=sys.stderr)
        return 2
    backend = cls.name
    if exclusive and not cls.capabilities.exclusive:
        print(f"portaio echo: the {backend} backend has no EXCLUSIVE mode", file=sys.stderr)
        return 2
    try:
        if workers == 1 or exclusive:
            first = make_listener(args.host, args.port, backlog=args.backlog)
            listeners = [first] * workers
        else:
            first = make_listener(args.host, args.port, reuseport=True, backlog=args.backlog)
            port = first.getsockname()[1]
            listeners = [first] + [
                make_listener(args.host, port, reuseport=True, backlog=args.backlog)
                for _ in range(workers - 1)
            ]
    except OSError as err:
        print(f"portaio echo: cannot listen on {args.host}:{args.port}: {err}", file=sys.stderr)
        return 1
    host, port = first.getsockname()[:2]
    mode = "single" if workers == 1 else args.mode
    print(
        f"portaio echo: listening on {host}:{port} (backend {backend}, {workers} worker(s), mode {mode},"
        f" pid {os.getpid()})",
        flush=True,
    )
    if workers == 1:
        try:
            return _serve(first, backend, False)
        finally:
            first.close()
    return _run_workers(listeners, backend, exclusive)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
