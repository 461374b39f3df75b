"""Showing the steps: layout, colour, and the pace (step by step, playing, or a transcript).

Colour follows the usual conventions: only on a terminal (``isatty``), never
when ``NO_COLOR`` is set to anything non-empty (https://no-color.org) or
``TERM`` is ``dumb`` or unset; ``--color always|never`` overrides.  Nothing
but ANSI SGR codes and "erase line" is used, so no terminal library is needed.

In step mode the terminal is put in cbreak mode (keys arrive one at a time,
Ctrl-C still interrupts) and restored however the run ends.  The keys are
waited for with a :class:`portaio.Poller` on stdin: the demo uses the library
it shows.
"""

from __future__ import annotations

import contextlib
import os
import sys
import textwrap
import time
from collections.abc import Iterator, Mapping
from typing import IO

import portaio

from ._stage import Step

__all__ = ["Pacer", "Style", "colour_wanted", "format_step", "keyboard"]

_SGR = {"title": "1", "does": "36", "kernel": "32", "why": "2", "bad": "1;31", "na": "33", "key": "7"}
_KEYS = "\r\n qQ"
"""Enter or space advances, q quits; every other key is ignored."""
LABEL_WIDTH = 8
WRAP = 100


def colour_wanted(stream: IO[str], mode: str = "auto", environ: Mapping[str, str] | None = None) -> bool:
    """Whether to colour output to *stream*: ``--color`` *mode*, then NO_COLOR, TERM and isatty."""
    if mode != "auto":
        return mode == "always"
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR") or env.get("TERM", "dumb") == "dumb":
        return False
    return _isatty(stream)


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Style:
    """Paints text with ANSI colours, or leaves it plain."""

    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def __call__(self, role: str, text: str) -> str:
        if not self.colour or not text:
            return text
        return f"\x1b[{_SGR[role]}m{text}\x1b[0m"


def _block(label: str, text: str, role: str, style: Style, width: int) -> list[str]:
    indent = " " * (4 + LABEL_WIDTH)
    lines: list[str] = []
    for n, paragraph in enumerate(text.split("\n")):
        head = f"    {label:<{LABEL_WIDTH}}" if n == 0 else indent
        if "\n" in text:  # a table: keep its columns, never wrap it
            lines.append(head + style(role, paragraph))
            continue
        wrapped = textwrap.wrap(paragraph, max(20, width - len(indent))) or [""]
        lines.append(head + style(role, wrapped[0]))
        lines += [indent + style(role, more) for more in wrapped[1:]]
    return lines


def format_step(number: int, step: Step, style: Style, width: int = WRAP) -> str:
    """A step as the transcript shows it: numbered ``do``, then ``kernel`` and ``why`` lines."""
    lines = _block("do", step.does, "does", style, width)
    lines[0] = f"{number:>3} " + lines[0][4:]
    lines += _block("kernel", step.kernel, "kernel", style, width)
    if step.applies:
        lines += _block("why", step.why, "why", style, width)
    else:
        lines += _block("n/a", step.why, "na", style, width)
    return "\n".join(lines)


@contextlib.contextmanager
def keyboard(fd: int) -> Iterator[None]:
    """cbreak mode on terminal *fd* for the duration (keys one at a time, signals still work)."""
    if sys.platform == "win32":  # no termios: keys arrive a line at a time
        yield
    else:
        import termios
        import tty

        saved = termios.tcgetattr(fd)
        try:
            tty.setcbreak(fd)
            yield
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class Pacer:
    """How the player moves on after a step: at once, after a delay, or on a key.

    ``interactive`` (stdin and stdout are terminals) enables the keys: in step
    mode Enter (or space) advances and ``q`` quits; while playing, ``q`` quits.
    """

    def __init__(
        self, out: IO[str], style: Style, *, play: bool, delay: float, interactive: bool, ansi: bool
    ) -> None:
        self.out = out
        self.ansi = ansi  # the terminal understands "carriage return, erase line"
        self.style = style
        self.play = play
        self.delay = delay
        self.interactive = interactive
        self.step_mode = interactive and not play
        self._stdin = sys.stdin.fileno() if interactive else -1
        self._poller: portaio.Poller | None = None
        self._typed: list[str] = []

    def __enter__(self) -> Pacer:
        self._stack = contextlib.ExitStack()
        if self.interactive:
            self._stack.enter_context(keyboard(self._stdin))
            self._poller = self._stack.enter_context(portaio.Poller())
            self._poller.register(self._stdin, portaio.READABLE)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _key(self, timeout: float | None) -> str | None:
        """The next key that means something (Enter, space, q) within *timeout*, or None."""
        assert self._poller is not None
        if not self._typed:
            if not self._poller.poll(timeout):
                return None
            data = os.read(self._stdin, 64)
            # Keys typed quickly arrive together: keep them, each advances once.
            self._typed = [key for key in data.decode(errors="replace") if key in _KEYS] if data else ["q"]
        return self._typed.pop(0) if self._typed else None

    def next(self) -> bool:
        """Wait before the next step; False when the user asked to quit."""
        if self.step_mode:
            prompt = self.style("key", " Enter: next   q: quit ")
            self.out.write(prompt)
            self.out.flush()
            key = None
            while key is None:
                key = self._key(None)
            # Erase the prompt (where the terminal can), so the transcript stays clean.
            self.out.write("\r\x1b[K" if self.ansi else "\n")
            self.out.flush()
            return key not in ("q", "Q")
        if self.play and self.delay > 0:
            if self.interactive:
                deadline = time.monotonic() + self.delay
                while (left := deadline - time.monotonic()) > 0:
                    if self._key(left) in ("q", "Q"):
                        return False
            else:
                time.sleep(self.delay)
        return True

    @property
    def draws_live(self) -> bool:
        """True where :meth:`live` redraws a line (a terminal that is not ``dumb``)."""
        return self.interactive and self.ansi

    def live(self, text: str) -> None:
        """Redraw one status line in place (terminals only; a transcript has no use for it)."""
        if self.interactive and self.ansi:
            self.out.write("\r\x1b[K" + self.style("why", text))
            self.out.flush()

    def clear_live(self) -> None:
        """Erase the status line before the next step is printed."""
        if self.interactive and self.ansi:
            self.out.write("\r\x1b[K")
            self.out.flush()
