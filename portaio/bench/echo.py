"""Echo benchmarks: 64-byte ping-pong throughput and CPU, and connections held.

Ping-pong: a small C client (``pingpong.c``, compiled here with ``gcc``) holds
K connections, each sending a request and waiting for its echo before the next.
Every server runs as its own process, one after the other in one run, so the
ratios compare like with like on a noisy machine.  For each server the table
gives requests per second, the server's CPU per request (from ``/proc``) and
the client's CPU use (near 100 % would mean the client is the bottleneck).

Connections held (``--held N``): one ``portaio echo`` process, clients in
several processes on source addresses 127.0.0.2, .3, ... (so ephemeral ports
never run out) open N connections, each sends a distinct payload and checks
its echo byte for byte while all N stay open; the server's memory per
connection is its RSS growth divided by N.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import resource
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ._echo_servers import KINDS

if sys.platform == "win32":  # pragma: no cover
    raise ImportError("portaio bench echo is POSIX-only (fork, rlimits, select.epoll)")

__all__ = ["main"]

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
_IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime + stime


def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def _compile_client(workdir: str) -> str:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise SystemExit("the echo benchmark needs gcc (or cc) to build its load generator")
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pingpong.c")
    binary = os.path.join(workdir, "pingpong")
    subprocess.run([gcc, "-O2", "-o", binary, source], check=True)
    return binary


def _server_command(kind: str, workers: int = 1) -> list[str]:
    if kind == "portaio":
        return [sys.executable, "-m", "portaio.echo", "--port", "0", "--workers", str(workers)]
    return [sys.executable, "-m", "portaio.bench._echo_servers", kind]


def _start_server(kind: str, workers: int = 1) -> tuple[subprocess.Popen[str], int]:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    pythonpath = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    # asyncio reads into 256 KiB buffers, above glibc's initial mmap threshold:
    # whether that threshold has adapted upwards depends on the allocation
    # history of start-up, and when it has not, every recv() costs an mmap,
    # mremap and munmap (3x the CPU per request, at random between runs).
    # Fixed thresholds (no mmap, no trimming of the heap top per buffer) make
    # every server allocate the same way.
    env = dict(
        os.environ, PYTHONPATH=pythonpath, MALLOC_MMAP_THRESHOLD_="4194304", MALLOC_TRIM_THRESHOLD_="67108864"
    )
    proc = subprocess.Popen(
        _server_command(kind, workers), stdout=subprocess.PIPE, text=True, env=env, cwd=root
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"listening on [\d.]+:(\d+)", line)
    if not match:
        proc.kill()
        raise RuntimeError(f"server {kind} did not start: {line!r}")
    return proc, int(match.group(1))


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Result:
    """One server at one K."""

    requests_per_s: float
    server_cpu_per_request_us: float
    server_cpu_share: float
    client_cpu_share: float


def _pingpong(client: str, kind: str, k: int, seconds: float, size: int) -> Result:
    server, port = _start_server(kind)
    try:
        proc = subprocess.Popen(
            [client, "127.0.0.1", str(port), str(k), str(seconds), str(size)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        if ready.strip() != "ready":
            raise RuntimeError(f"client failed against {kind}: {ready!r}")
        cpu0 = _cpu_seconds(server.pid)
        out = proc.stdout.readline()
        cpu1 = _cpu_seconds(server.pid)
        proc.wait()
        fields = dict(item.split("=") for item in out.split())
        requests, elapsed, client_cpu = (
            int(fields["requests"]),
            float(fields["seconds"]),
            float(fields["cpu"]),
        )
    finally:
        _stop(server)
    return Result(
        requests / elapsed,
        (cpu1 - cpu0) / max(requests, 1) * 1e6,
        (cpu1 - cpu0) / elapsed,
        client_cpu / elapsed,
    )


def _available_kinds() -> list[str]:
    kinds = ["portaio", *KINDS]
    if importlib.util.find_spec("uvloop") is None:
        kinds = [k for k in kinds if not k.startswith("uvloop")]
    return kinds


def run_pingpong(ks: Sequence[int], seconds: float, size: int, repeats: int, kinds: Sequence[str]) -> int:
    """Print the ping-pong table; returns 0."""
    with tempfile.TemporaryDirectory() as tmp:
        client = _compile_client(tmp)
        print(f"{size}-byte echo ping-pong, {seconds:g} s per run, best of {repeats}; C client (pingpong.c)")
        for k in ks:
            best: dict[str, Result] = {}
            for _ in range(repeats):
                for kind in kinds:
                    res = _pingpong(client, kind, k, seconds, size)
                    if kind not in best or res.requests_per_s > best[kind].requests_per_s:
                        best[kind] = res
            print(f"\nK = {k} connections")
            print(f"{'server':26} {'req/s':>10} {'server us/req':>14} {'server CPU':>11} {'client CPU':>11}")
            for kind, res in best.items():
                print(
                    f"{kind:26} {res.requests_per_s:10.0f} {res.server_cpu_per_request_us:14.2f}"
                    f" {res.server_cpu_share:10.0%} {res.client_cpu_share:10.0%}"
                )
            _ratios(best)
    return 0


def _ratios(best: dict[str, Result]) -> None:
    p = best.get("portaio")
    if p is None:
        return
    lines = []
    if "epoll" in best:
        ratio = p.server_cpu_per_request_us / best["epoll"].server_cpu_per_request_us
        lines.append(f"portaio echo CPU/request vs hand-written epoll loop: {ratio:.2f}x (target <= 1.1x)")
    for style in ("protocol", "streams"):
        a = best.get(f"asyncio-{style}")
        if a is not None:
            rps = p.requests_per_s / a.requests_per_s
            cpu = a.server_cpu_per_request_us / p.server_cpu_per_request_us
            lines.append(
                f"portaio echo vs asyncio {style}: req/s {rps:.2f}x, CPU/request {cpu:.2f}x less (>= 3.5x)"
            )
        pa = best.get(f"portaio-asyncio-{style}")
        if a is not None and pa is not None:
            rps = pa.requests_per_s / a.requests_per_s
            cpu = a.server_cpu_per_request_us / pa.server_cpu_per_request_us
            lines.append(
                f"asyncio {style} on portaio.asyncio vs default loop: req/s {rps:.2f}x,"
                f" CPU/request {cpu:.2f}x less (target >= 1.05x)"
            )
        u = best.get(f"uvloop-{style}")
        if u is not None:
            lines.append(f"portaio echo req/s vs uvloop {style}: {p.requests_per_s / u.requests_per_s:.2f}x")
    for line in lines:
        print("  " + line)


# ------------------------------------------------------------ connections held
def _held_client(n: int, source: str, port: int, report_fd: int, go_fd: int) -> int:  # pragma: no cover
    """Child process: open *n* connections from *source*, check each echo, hold them."""
    socks: list[socket.socket] = []
    ep = select.epoll()
    try:
        batch = 256
        for start in range(0, n, batch):
            chunk = []
            for _ in range(min(batch, n - start)):
                s = socket.socket()
                # Pick the port at connect() from the 4-tuple: bind(ip, 0)
                # alone reserves a port per socket and slows to a crawl.
                s.setsockopt(socket.IPPROTO_IP, _IP_BIND_ADDRESS_NO_PORT, 1)
                s.bind((source, 0))
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
                chunk.append(s)
                ep.register(s.fileno(), select.EPOLLOUT)
            waiting = {s.fileno(): s for s in chunk}
            deadline = time.monotonic() + 30
            while waiting and time.monotonic() < deadline:
                for fd, _ in ep.poll(1):
                    s = waiting.pop(fd)
                    ep.unregister(fd)
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, os.strerror(err))
            if waiting:
                raise TimeoutError(f"{len(waiting)} connections did not complete")
            socks.extend(chunk)
        # Every connection sends its own payload and must get exactly it back.
        expected: dict[int, bytes] = {}
        got: dict[int, bytearray] = {}
        for i, s in enumerate(socks):
            payload = f"{source}#{i}#".encode() + os.urandom(16)
            expected[s.fileno()] = payload
            got[s.fileno()] = bytearray()
            s.send(payload)
            ep.register(s.fileno(), select.EPOLLIN)
        by_fd = {s.fileno(): s for s in socks}
        remaining = set(expected)
        deadline = time.monotonic() + 20
        while remaining and time.monotonic() < deadline:
            for fd, _ in ep.poll(1):
                data = by_fd[fd].recv(4096)
                if not data:
                    raise ConnectionError("server closed a connection")
                got[fd] += data
                if len(got[fd]) >= len(expected[fd]):
                    remaining.discard(fd)
                    ep.unregister(fd)
        exact = sum(1 for fd in expected if bytes(got[fd]) == expected[fd])
        os.write(report_fd, f"{len(socks)} {exact}\n".encode())
        os.read(go_fd, 1)  # hold every connection until the parent has measured
        return 0
    except Exception as err:
        os.write(report_fd, f"error {err}\n".encode())
        return 1
    finally:
        for s in socks:
            s.close()


def _server_pids(pid: int) -> list[int]:
    """The server process and its workers."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(c) for c in f.read().split()]
    except OSError:
        children = []
    return children or [pid]


def run_held(total: int, processes: int, workers: int = 1) -> int:
    """Hold *total* connections to ``portaio echo`` (*workers* processes); print the table."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    server, port = _start_server("portaio", workers)
    try:
        time.sleep(0.2 if workers > 1 else 0)  # let the workers start
        pids = _server_pids(server.pid)
        rss0 = sum(_rss_bytes(pid) for pid in pids)
        fds0 = sum(len(os.listdir(f"/proc/{pid}/fd")) for pid in pids)
        per = -(-total // processes)
        report_r, report_w = os.pipe()
        go_r, go_w = os.pipe()
        children = []
        t0 = time.monotonic()
        for p in range(processes):
            n = min(per, total - p * per)
            pid = os.fork()
            if pid == 0:  # pragma: no cover
                os.close(report_r)
                os.close(go_w)
                os._exit(_held_client(n, f"127.0.0.{2 + p}", port, report_w, go_r))
            children.append(pid)
        os.close(report_w)
        os.close(go_r)
        lines = []
        with os.fdopen(report_r) as reports:
            for _ in children:
                lines.append(reports.readline().strip())
        elapsed = time.monotonic() - t0
        rss1 = sum(_rss_bytes(pid) for pid in pids)
        server_fds = sum(len(os.listdir(f"/proc/{pid}/fd")) for pid in pids)
        os.write(go_w, b"x" * len(children))
        os.close(go_w)
        for pid in children:
            os.waitpid(pid, 0)
    finally:
        _stop(server)
    opened = exact = 0
    errors = []
    for line in lines:
        if line.startswith("error") or not line:
            errors.append(line or "a client died")
            continue
        a, b = line.split()
        opened, exact = opened + int(a), exact + int(b)
    who = "one portaio echo process" if workers == 1 else f"portaio echo, {workers} SO_REUSEPORT workers"
    print(f"connections held by {who} (fd limit {limit} each, {processes} client processes)")
    print(
        f"  asked {total}, connected {opened}, answered byte-exactly {exact};"
        f" server fds {fds0} idle -> {server_fds} ({server_fds - fds0} connections accepted,"
        f" room for {limit * len(pids) - fds0})"
    )
    print(f"  setup + check took {elapsed:.1f} s")
    if exact:
        per_conn = (rss1 - rss0) / exact
        print(
            f"  server RSS {rss0 / 2**20:.1f} MiB -> {rss1 / 2**20:.1f} MiB: {per_conn:.0f} bytes/connection"
        )
    for err in errors:
        print(f"  client error: {err}")
    return 0 if exact == total and not errors else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the echo benchmarks (see the module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(prog="portaio-bench-echo", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "-k", type=int, nargs="*", default=[1, 100, 1000], help="connections (default 1 100 1000)"
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each run (default 3)")
    parser.add_argument("--size", type=int, default=64, help="request size in bytes (default 64)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per server, best kept (default 1)")
    parser.add_argument("--servers", nargs="*", default=None, help=f"subset of: portaio {' '.join(KINDS)}")
    parser.add_argument("--held", type=int, default=0, help="also hold N connections (e.g. 19000)")
    parser.add_argument("--held-only", action="store_true", help="only the connections-held run")
    parser.add_argument("--processes", type=int, default=4, help="client processes for --held (default 4)")
    parser.add_argument(
        "--workers", type=int, default=1, help="server worker processes for --held (default 1)"
    )
    args = parser.parse_args(argv)
    status = 0
    if not args.held_only:
        status |= run_pingpong(
            args.k, args.seconds, args.size, args.repeats, args.servers or _available_kinds()
        )
    if args.held:
        print()
        status |= run_held(args.held, args.processes, args.workers)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
