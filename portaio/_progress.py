"""Progress shown on a terminal during long runs (``portaio bench``, ``portaio conformance``).

Nothing is drawn unless standard error is a terminal, so piped and CI output
stays clean.  :class:`Ticker` shows the elapsed time of a run that does not
know its length; :func:`steps` draws a bar over an iterable of known length
(benchmarks call it around their outer loop).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sized
from typing import Any, TextIO, TypeVar

__all__ = ["Ticker", "steps"]

T = TypeVar("T")
_CLEAR = "\r\x1b[K"
_lock = threading.Lock()
_status = {"shown": False, "bars": 0}


def _enabled(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _draw(stream: TextIO, text: str) -> None:
    with _lock:
        stream.write(_CLEAR + text)
        stream.flush()
        _status["shown"] = True


def _clear(stream: TextIO) -> None:
    with _lock:
        if _status["shown"]:
            stream.write(_CLEAR)
            stream.flush()
            _status["shown"] = False


class _ClearingWriter:
    """Wraps stdout so that printed lines first erase the status line."""

    def __init__(self, stream: TextIO, status: TextIO) -> None:
        self._stream = stream
        self._status = status

    def write(self, text: str) -> int:
        _clear(self._status)
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class Ticker:
    """Show ``label ... 12 s`` on standard error until the block ends."""

    def __init__(self, label: str, stream: TextIO | None = None, interval: float = 0.5) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.enabled = _enabled(self.stream)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stdout: TextIO | None = None

    def __enter__(self) -> Ticker:
        if self.enabled:
            self._stdout = sys.stdout
            sys.stdout = _ClearingWriter(sys.stdout, self.stream)
            self._thread = threading.Thread(target=self._run, name="portaio-progress", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        start = time.monotonic()
        frames = "|/-\\"
        n = 0
        while not self._stop.wait(self.interval):
            n += 1
            if _status["bars"]:
                continue  # a bar from steps() says more than the ticker
            _draw(self.stream, f"{frames[n % 4]} {self.label} ... {time.monotonic() - start:.0f} s")

    def __exit__(self, *exc_info: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            _clear(self.stream)
        if self._stdout is not None:
            sys.stdout = self._stdout


def steps(
    items: Iterable[T], label: str, total: int | None = None, stream: TextIO | None = None
) -> Iterator[T]:
    """Yield *items*, drawing ``label [####    ] 3/8`` on a terminal as they go."""
    out = stream if stream is not None else sys.stderr
    if total is None and isinstance(items, Sized):
        total = len(items)
    if not _enabled(out):
        yield from items
        return
    _status["bars"] += 1
    try:
        for done, item in enumerate(items):
            if total:
                filled = 20 * done // total
                _draw(out, f"{label} [{'#' * filled}{' ' * (20 - filled)}] {done}/{total}")
            else:
                _draw(out, f"{label} {done} ...")
            yield item
    finally:
        _status["bars"] -= 1
        _clear(out)
