"""Which way of decoding epoll records is fastest on this interpreter (PyPy, CPython).

R ready sockets out of 1,000 registered on one epoll instance; each variant
waits once with a zero timeout through cffi and turns the records into a
list of cached objects (a dict lookup per event, as portaio's hot path does).
The "C keys" variants use ``decode_keys.c``: a wait that writes each record as
one ``uint64`` key, ``token | flags << 32`` (the layout of portaio's own waits;
the ``struct`` unpack of the raw records reads ``flags | token << 32``, the
layout it can reach, into a cache of its own).  Contenders take turns within each
of the *repeats* turns; the best turn counts.  Prints ns per event.

    python3 tools/decode_bench.py [REPEATS]      # needs cffi and a C compiler

The numbers are quoted in docs/benchmarks.rst (On PyPy).
"""

from __future__ import annotations

import importlib
import os
import select
import socket
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from cffi import FFI

CDEF = """
typedef union epoll_data { uint64_t u64; ...; } epoll_data_t;
struct epoll_event { uint32_t events; epoll_data_t data; ...; };
int epoll_create1(int flags);
int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event);
int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout);
int keys_wait(int epfd, struct epoll_event *events, uint64_t *keys, int maxevents);
#define EPOLLIN ...
#define EPOLL_CTL_ADD ...
"""


def build() -> Any:
    """Compile the bindings into a temporary directory and import them."""
    here = os.path.dirname(os.path.abspath(__file__))
    ffi = FFI()
    ffi.cdef(CDEF)
    ffi.set_source(
        "_decode_keys",
        '#include <sys/epoll.h>\n#include "decode_keys.c"',
        include_dirs=[here],
        extra_compile_args=["-O2"],
    )
    tmp = tempfile.mkdtemp(prefix="portaio-decode-")
    ffi.compile(tmpdir=tmp, verbose=False)
    sys.path.insert(0, tmp)
    return importlib.import_module("_decode_keys")


def main() -> int:
    """Print the table; returns 0."""
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    module = build()
    ffi, lib = module.ffi, module.lib
    pairs = [socket.socketpair() for _ in range(1000)]
    epfd = lib.epoll_create1(0)
    ep = select.epoll()
    ev = ffi.new("struct epoll_event *")
    cache: dict[int, object] = {}
    record_cache: dict[int, object] = {}  # keyed as the record unpack reads them
    table: dict[int, object] = {}
    for token, (a, _) in enumerate(pairs, 1):
        a.setblocking(False)
        ev.events = lib.EPOLLIN
        ev.data.u64 = token
        if lib.epoll_ctl(epfd, lib.EPOLL_CTL_ADD, a.fileno(), ev) != 0:
            raise OSError(ffi.errno, "epoll_ctl")
        ep.register(a.fileno(), select.EPOLLIN)
        cache[token | (lib.EPOLLIN << 32)] = ("event", a.fileno())
        record_cache[lib.EPOLLIN | (token << 32)] = cache[token | (lib.EPOLLIN << 32)]
        table[a.fileno()] = ("conn", a.fileno())
    size = 1024
    buf = ffi.new("struct epoll_event[]", size)
    cbuf = ffi.buffer(buf)
    keys = ffi.new("uint64_t[]", size)
    kbuf = ffi.buffer(keys)
    kview = memoryview(kbuf).cast("B").cast("Q")
    if (ffi.sizeof("struct epoll_event"), ffi.offsetof("struct epoll_event", "data")) != (12, 4):
        print("struct epoll_event is not the packed 12-byte x86-64 layout: the struct variant is x86-64 only")
        return 1
    unpackers: dict[int, Callable[..., tuple[int, ...]]] = {}

    def unpacker(n: int) -> Callable[..., tuple[int, ...]]:
        if n not in unpackers:
            unpackers[n] = struct.Struct("<" + "Q4x" * n).unpack_from
        return unpackers[n]

    get = cache.__getitem__
    get_record = record_cache.__getitem__

    def v_struct() -> list[object]:
        n = lib.epoll_wait(epfd, buf, size, 0)
        return list(map(get_record, unpacker(n)(cbuf)))

    def v_fields() -> list[object]:
        n = lib.epoll_wait(epfd, buf, size, 0)
        return [get(buf[i].data.u64 | (buf[i].events << 32)) for i in range(n)]

    def v_keys_unpack() -> list[object]:
        n = lib.keys_wait(epfd, buf, keys, size)
        return list(map(get, ffi.unpack(keys, n)))

    def v_keys_index() -> list[object]:
        n = lib.keys_wait(epfd, buf, keys, size)
        return [get(keys[i]) for i in range(n)]

    def v_keys_memoryview() -> list[object]:
        n = lib.keys_wait(epfd, buf, keys, size)
        return list(map(get, kview[:n].tolist()))

    def v_keys_struct() -> list[object]:
        n = lib.keys_wait(epfd, buf, keys, size)
        return list(map(get, struct.unpack_from(f"{n}Q", kbuf)))

    def v_select_epoll() -> list[object]:
        return [table[fd] for fd, _ in ep.poll(0)]

    def v_wait_only() -> int:
        return int(lib.epoll_wait(epfd, buf, size, 0))

    variants: list[tuple[str, Callable[[], object]]] = [
        ("struct of records", v_struct),
        ("cffi fields", v_fields),
        ("keys+ffi.unpack", v_keys_unpack),
        ("keys+index", v_keys_index),
        ("keys+memoryview", v_keys_memoryview),
        ("keys+struct Q", v_keys_struct),
        ("select.epoll+dict", v_select_epoll),
        ("bare wait", v_wait_only),
    ]

    def turn(fn: Callable[[], object], number: int) -> float:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        return (time.perf_counter() - start) / number

    print(sys.implementation.name, sys.version.split()[0], f"- ns per event, best of {repeats} turns")
    print("R".rjust(4), *(name.rjust(18) for name, _ in variants))
    for ready in (1, 16, 64, 256):
        for a, _ in pairs:
            try:
                a.recv(65536)
            except BlockingIOError:
                pass
        for _, b in pairs[:ready]:
            b.send(b"x")
        for name, fn in variants[:-1]:
            got = fn()
            assert isinstance(got, list) and len(got) == ready, (name, got)
        number = max(20, 2000 // ready)
        for _, fn in variants:
            turn(fn, number * 3)  # warm-up (PyPy's JIT)
        best = [float("inf")] * len(variants)
        for _ in range(repeats):
            for j, (_, fn) in enumerate(variants):
                best[j] = min(best[j], turn(fn, number))
        print(str(ready).rjust(4), *(f"{t * 1e9 / ready:18.0f}" for t in best))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
