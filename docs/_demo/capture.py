"""Capture the transcripts docs/demo.rst shows, from a real run of the installed portaio.

Run ``python docs/_demo/capture.py`` with the portaio to document installed
(not from the repository root, which would import the uncompiled tree).  It
writes one ``SCENE-BACKEND.txt`` per transcript shown and ``captured.inc``,
the sentence saying when and on what machine they were captured.
"""

from __future__ import annotations

import datetime
import io
import platform
from pathlib import Path

import portaio
from portaio.demo import SCENES, main

HERE = Path(__file__).resolve().parent
SHOWN = [(name, "epoll") for name in SCENES] + [("level-edge", "poll"), ("herd", "select")]
"""Every scene on epoll, and the scenes' parts that do not apply on poll and select."""


def scene_text(name: str, backend: str) -> str:
    """The transcript of one scene: its section, without the run's header and summary lines."""
    out = io.StringIO()
    status = main([name, "--backend", backend, "--color", "never"], out=out)
    if status != 0:
        raise SystemExit(f"{name} on {backend}: exit status {status}:\n{out.getvalue()}")
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("== "))
    end = max(i for i, line in enumerate(lines) if line.startswith("demo: "))
    return "\n".join(lines[start:end]).rstrip() + "\n"


def main_() -> None:
    """Write the transcripts and the capture note."""
    for name, backend in SHOWN:
        (HERE / f"{name}-{backend}.txt").write_text(scene_text(name, backend))
    uname = platform.uname()
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%d %b %Y, %H:%M UTC")
    (HERE / "captured.inc").write_text(
        f"Captured on {when} with portaio {portaio.__version__} on {uname.system} {uname.release}"
        f" ({uname.machine}), {platform.python_implementation()} {platform.python_version()},"
        " by ``python docs/_demo/capture.py``.\n"
    )


if __name__ == "__main__":
    main_()
