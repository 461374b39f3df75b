"""Soak and scale: many TCP connections echo checksum-verified payloads for minutes.

Server: ``--server-workers`` processes, each with its own ``SO_REUSEPORT``
listener on one port and a Poller-based echo loop (``portaio.echo.EchoServer``
where the build has it, else the minimal echo below).  Clients:
``--client-procs`` processes, each driving its share of the connections from
one Poller, bound to several loopback source addresses (127.0.0.2, .3, ...)
so that the ephemeral port range does not cap the count.  The per-process fd
limit caps each process, hence several of each.

Every round, every connection sends a fresh random payload and must read back
exactly those bytes (CRC-32 and byte comparison); rounds repeat until
``--seconds`` have passed.  The parent samples the resident memory of every
process meanwhile.  The result, as JSON on stdout::

    python benchmarks/soak.py --connections 150000 --seconds 300

Exit status 0 only if every connection was established and echoed every
round, with 0 bytes lost or corrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import math
import os
import random
import signal
import socket
import sys
import time
import zlib
from typing import Any

try:
    import portaio
except ImportError:  # run from a source tree without installing: use it
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import portaio
from portaio import ERROR, HANGUP, READABLE, WRITABLE

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
PER_PROCESS = 16_000  # connections per process, well under the 20,000 fd limit
MAX_CONNECTING = 256  # connects in flight per client process (keeps accept queues from overflowing)


# ----------------------------------------------------------------- server
class MiniEcho:
    """A minimal level-triggered echo loop on a Poller (used when portaio.echo is absent)."""

    def __init__(self, listener: socket.socket, backend: str | None) -> None:
        listener.setblocking(False)
        self.listener = listener
        self.p = portaio.Poller(backend)
        self.p.register(listener, READABLE, None)
        self.pending: dict[int, tuple[socket.socket, bytearray]] = {}
        self.running = True

    def stop(self) -> None:
        self.running = False

    def serve_forever(self) -> None:
        while self.running:
            for ev in self.p.poll(0.2):
                if ev.data is None:
                    self._accept()
                else:
                    self._serve(ev.data, ev.events)

    def _accept(self) -> None:
        for _ in range(256):
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:
                if err.errno in (errno.EMFILE, errno.ENFILE):
                    return
                raise
            sock.setblocking(False)
            self.pending[sock.fileno()] = (sock, bytearray())
            self.p.register(sock, READABLE, sock)

    def _serve(self, sock: socket.socket, flags: int) -> None:
        fd = sock.fileno()
        _, buf = self.pending[fd]
        if flags & (READABLE | HANGUP | ERROR):
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                data = None
            except OSError:
                data = b""
            if data == b"":
                self.p.unregister(sock)
                del self.pending[fd]
                sock.close()
                return
            if data:
                buf += data
        if buf:
            try:
                sent = sock.send(buf)
            except BlockingIOError:
                sent = 0
            del buf[:sent]
        self.p.modify(sock, READABLE | (WRITABLE if buf else 0), sock)


def server_worker(listener: socket.socket, backend: str | None) -> None:
    try:
        from portaio.echo import EchoServer  # type: ignore[import-not-found,unused-ignore]

        server: Any = EchoServer(listener, backend)
    except ImportError:
        server = MiniEcho(listener, backend)
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    server.serve_forever()


# ----------------------------------------------------------------- client
class Conn:
    __slots__ = ("crc", "expected", "got", "sock", "state")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.state = "connecting"
        self.expected: bytes | memoryview = b""
        self.got = 0
        self.crc = 0


def client_proc(args: argparse.Namespace, index: int, count: int, port: int, report: int) -> None:
    rng = random.Random(index)
    p = portaio.Poller(args.backend)
    conns: dict[int, Conn] = {}
    stats = {"index": index, "wanted": count, "established": 0, "rounds": 0, "bytes": 0, "corrupt": 0}
    stats.update({"lost": 0, "connect_errors": 0, "errors": []})  # type: ignore[dict-item]
    start = time.monotonic()

    def write_line(obj: Any) -> None:
        os.write(report, (json.dumps(obj) + "\n").encode())

    # Phase 1: connect, MAX_CONNECTING at a time.
    made = 0
    connecting = 0
    while stats["established"] + stats["connect_errors"] < count:
        while made < count and connecting < MAX_CONNECTING:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((f"127.0.0.{2 + (index + made * args.client_procs) % args.source_ips}", 0))
            err = sock.connect_ex(("127.0.0.1", port))
            if err not in (0, errno.EINPROGRESS):
                stats["connect_errors"] += 1
                stats["errors"].append(os.strerror(err))  # type: ignore[attr-defined]
                sock.close()
                made += 1
                continue
            conn = Conn(sock)
            conns[sock.fileno()] = conn
            p.register(sock, WRITABLE, conn)
            made += 1
            connecting += 1
        for ev in p.poll(1.0):
            conn = ev.data
            err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            connecting -= 1
            if err:
                stats["connect_errors"] += 1
                stats["errors"].append(os.strerror(err))  # type: ignore[attr-defined]
                p.unregister(conn.sock)
                del conns[conn.sock.fileno()]
                conn.sock.close()
                continue
            stats["established"] += 1
            conn.state = "idle"
            p.modify(conn.sock, READABLE, conn)
        if time.monotonic() - start > args.connect_timeout:
            break
    stats["connect_seconds"] = round(time.monotonic() - start, 2)
    write_line({"connected": stats["established"], "index": index})

    # Phase 2: rounds of echo until the deadline.
    block = memoryview(rng.randbytes(1 << 20))
    deadline = time.monotonic() + args.seconds
    live = list(conns.values())
    while time.monotonic() < deadline and live:
        for conn in live:
            # A random window of one random block: fresh bytes every round
            # without allocating (and fragmenting) per payload.
            size = rng.randint(args.min_payload, args.max_payload)
            offset = rng.randrange(len(block) - size)
            conn.expected = block[offset : offset + size]
            conn.got = 0
            conn.crc = 0
            conn.state = "echo"
            sent = conn.sock.send(conn.expected)  # far below the socket buffer: never partial
            assert sent == len(conn.expected)
        waiting = len(live)
        round_start = time.monotonic()
        while waiting:
            events = p.poll(5.0)
            if not events and time.monotonic() - round_start > args.round_timeout:
                stats["lost"] += sum(len(c.expected) - c.got for c in live if c.state == "echo")
                stats["errors"].append(f"round timed out with {waiting} connections waiting")  # type: ignore[attr-defined]
                waiting = 0
                break
            for ev in events:
                conn = ev.data
                try:
                    data = conn.sock.recv(len(conn.expected) - conn.got or 1)
                except BlockingIOError:
                    continue
                except OSError as err:
                    data = b""
                    stats["errors"].append(str(err))  # type: ignore[attr-defined]
                if not data:
                    stats["lost"] += len(conn.expected) - conn.got
                    stats["errors"].append("connection closed by the server")  # type: ignore[attr-defined]
                    p.unregister(conn.sock)
                    live.remove(conn)
                    waiting -= 1
                    continue
                if data != conn.expected[conn.got : conn.got + len(data)]:
                    stats["corrupt"] += len(data)
                conn.crc = zlib.crc32(data, conn.crc)
                conn.got += len(data)
                if conn.got >= len(conn.expected):
                    if conn.crc != zlib.crc32(conn.expected) or conn.got != len(conn.expected):
                        stats["corrupt"] += len(conn.expected)
                    conn.state = "idle"
                    stats["bytes"] += len(conn.expected)
                    waiting -= 1
        stats["rounds"] += 1
    stats["alive_at_end"] = len(live)
    stats["seconds"] = round(time.monotonic() - start, 2)
    write_line(stats)
    for conn in conns.values():
        conn.sock.close()
    p.close()


# ----------------------------------------------------------------- parent
def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def fork(target: Any, *args: Any) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 0
        try:
            target(*args)
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    return pid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=60.0, help="echo rounds last this long")
    parser.add_argument("--server-workers", type=int, default=0, help="0: enough for the connections")
    parser.add_argument("--client-procs", type=int, default=0, help="0: enough for the connections")
    parser.add_argument("--source-ips", type=int, default=0, help="0: one 127.0.0.x per 5,000 connections")
    parser.add_argument("--backend", default=None)
    parser.add_argument("--min-payload", type=int, default=16)
    parser.add_argument("--max-payload", type=int, default=1024)
    parser.add_argument("--connect-timeout", type=float, default=600.0)
    parser.add_argument("--round-timeout", type=float, default=60.0)
    parser.add_argument("--sample-every", type=float, default=5.0)
    args = parser.parse_args(argv)
    per = math.ceil(args.connections / PER_PROCESS)
    args.server_workers = args.server_workers or max(1, per + (1 if args.connections > PER_PROCESS else 0))
    args.client_procs = args.client_procs or max(1, per)
    args.source_ips = args.source_ips or max(1, math.ceil(args.connections / 5_000))

    listeners = []
    port = 0
    for _ in range(args.server_workers):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        ls.bind(("127.0.0.1", port))
        port = ls.getsockname()[1]
        ls.listen(4096)
        listeners.append(ls)
    try:
        from portaio import echo  # type: ignore[attr-defined,unused-ignore]  # noqa: F401

        server_kind = "portaio.echo.EchoServer"
    except ImportError:
        server_kind = "benchmarks/soak.py MiniEcho"
    servers = []
    for i, ls in enumerate(listeners):
        servers.append(fork(server_worker, ls, args.backend))
        del i
    for ls in listeners:
        ls.close()

    shares = [args.connections // args.client_procs] * args.client_procs
    for i in range(args.connections % args.client_procs):
        shares[i] += 1
    clients = []
    pipes = []
    for i, share in enumerate(shares):
        r, w = os.pipe()
        clients.append(fork(client_proc, args, i, share, port, w))
        os.close(w)
        pipes.append(r)

    t0 = time.monotonic()
    results: list[dict[str, Any]] = []
    connected = 0
    samples: list[tuple[float, int, int]] = []
    buffers = {r: b"" for r in pipes}
    open_pipes = set(pipes)
    import select

    next_sample = time.monotonic()
    while open_pipes:
        ready, _, _ = select.select(list(open_pipes), [], [], max(0.0, next_sample - time.monotonic()))
        for r in ready:
            chunk = os.read(r, 65536)
            if not chunk:
                open_pipes.discard(r)
                continue
            buffers[r] += chunk
            while b"\n" in buffers[r]:
                line, buffers[r] = buffers[r].split(b"\n", 1)
                msg = json.loads(line)
                if "connected" in msg:
                    connected += msg["connected"]
                    if connected == sum(shares):
                        print(
                            f"# {connected} connections after {time.monotonic() - t0:.1f} s", file=sys.stderr
                        )
                else:
                    results.append(msg)
        if time.monotonic() >= next_sample:
            next_sample += args.sample_every
            samples.append(
                (
                    round(time.monotonic() - t0, 1),
                    sum(rss_kib(pid) for pid in servers),
                    sum(rss_kib(pid) for pid in clients),
                )
            )
    for pid in clients:
        os.waitpid(pid, 0)
    for pid in servers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for pid in servers:
        os.waitpid(pid, 0)
    for r in pipes:
        os.close(r)

    established = sum(r["established"] for r in results)
    # Memory is compared over the echo phase of every client: from 5 s after
    # the last one had its connections up to the first one finishing.
    connect_times = [r["connect_seconds"] for r in results] or [0.0]
    start_steady, end_steady = max(connect_times) + 5, min(connect_times) + args.seconds - 1
    steady = [s for s in samples if start_steady <= s[0] <= end_steady]
    summary = {
        "server": server_kind,
        "backend": args.backend or portaio.default_backend(),
        "connections_wanted": args.connections,
        "connections_established": established,
        "server_workers": args.server_workers,
        "client_procs": args.client_procs,
        "source_ips": args.source_ips,
        "echo_seconds": args.seconds,
        "connect_seconds": max((r["connect_seconds"] for r in results), default=None),
        "rounds_min": min((r["rounds"] for r in results), default=0),
        "bytes_echoed": sum(r["bytes"] for r in results),
        "bytes_lost": sum(r["lost"] for r in results),
        "bytes_corrupt": sum(r["corrupt"] for r in results),
        "connect_errors": sum(r["connect_errors"] for r in results),
        "alive_at_end": sum(r.get("alive_at_end", 0) for r in results),
        "errors": sorted({e for r in results for e in r["errors"]})[:10],
        "rss_server_kib_first_last": [steady[0][1], steady[-1][1]] if steady else None,
        "rss_client_kib_first_last": [steady[0][2], steady[-1][2]] if steady else None,
        "samples": samples,
    }
    print(json.dumps(summary, indent=1))
    ok = (
        len(results) == len(shares)
        and established == args.connections
        and summary["alive_at_end"] == args.connections
        and summary["bytes_lost"] == 0
        and summary["bytes_corrupt"] == 0
        and summary["rounds_min"] >= 1
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
