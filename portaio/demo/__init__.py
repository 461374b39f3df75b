"""``portaio demo``: step through what the kernel tells you, live, on this machine.

Short scenes, each running the real thing — real sockets, a real poller on the
chosen backend — and showing step by step what the program does, what the
kernel answers (which fds, which flags) and why.  Every answer is checked as it
comes: if the kernel says otherwise than the scene states, the demo says so
and exits with status 1.  On a terminal Enter advances and ``q`` quits;
``--play`` advances by itself; piped, it prints the transcript and exits.

>>> result = run_scene("oneshot", "poll")
>>> result.outcome, result.steps[1].kernel.endswith("READABLE")
('ok', True)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import sys
from collections.abc import Sequence
from typing import IO

import portaio

from ._player import WRAP, Pacer, Style, colour_wanted, format_step
from ._scene_hangups import hangups
from ._scene_herd import herd
from ._scene_scaling import scaling
from ._scenes_modes import drain_trap, level_edge, oneshot
from ._stage import Disagreement, Scene, Stage, Step

__all__ = ["SCENES", "Disagreement", "Scene", "SceneResult", "Step", "main", "run_scene"]

SCENES: dict[str, Scene] = {
    scene.name: scene
    for scene in (
        Scene(
            "level-edge",
            "Level-triggered vs edge-triggered: 8 KB sent, 4 KB read",
            "A level-triggered"
            " poll reports unread data on every call; an edge-triggered one once per arrival.",
            level_edge,
        ),
        Scene(
            "drain",
            "The drain-to-EAGAIN trap",
            "An edge-triggered reader that stops before EAGAIN"
            " stalls its connection forever; one that drains does not.",
            drain_trap,
        ),
        Scene(
            "scaling",
            "O(N) vs O(ready): the cost of one wait as idle fds are added",
            "poll and select"
            " pay for every registered fd on every wait; epoll and kqueue only for the ready ones.",
            scaling,
        ),
        Scene(
            "oneshot",
            "ONESHOT and re-arming",
            "One event, then silence until modify() re-arms;"
            " re-arming while the fd is ready reports it at once.",
            oneshot,
        ),
        Scene(
            "herd",
            "EXCLUSIVE and the thundering herd",
            "Threads with their own pollers on one listening"
            " socket: one connection wakes them all, or, with EXCLUSIVE, one.",
            herd,
        ),
        Scene(
            "hangups",
            "Hang-ups: peer FIN (half-close), own shutdown, both shut, peer RST",
            "What a connection's end looks"
            " like: RDHUP, HANGUP and ERROR, on this backend and then on every backend.",
            hangups,
        ),
    )
}
"""Every scene, in the order the demo plays them."""


@dataclasses.dataclass
class SceneResult:
    """What one scene did on one backend."""

    name: str
    backend: str
    steps: list[Step] = dataclasses.field(default_factory=list)
    outcome: str = "ok"
    """``ok``, ``n/a`` (part of it does not apply here), ``disagrees``, or ``quit``."""
    disagreement: Disagreement | None = None


class _Show:
    """Runs scenes and prints them through a :class:`Pacer`."""

    def __init__(self, out: IO[str], style: Style, pacer: Pacer | None, width: int) -> None:
        self.out = out
        self.style = style
        self.pacer = pacer
        self.width = width
        self.started = False

    def _print(self, text: str = "") -> None:
        if self.pacer is not None:
            self.pacer.clear_live()
        print(text, file=self.out, flush=True)

    def scene(self, scene: Scene, backend: str, number: int, total: int) -> SceneResult:
        result = SceneResult(scene.name, backend)
        draws = self.pacer is not None and self.pacer.draws_live
        stage = Stage(backend, live=self.pacer.live if self.pacer is not None and draws else None)
        steps = scene.run(stage)
        try:
            while True:
                if self.started and self.pacer is not None and not self.pacer.next():
                    result.outcome = "quit"
                    return result
                try:
                    step = next(steps)
                except StopIteration:
                    break
                except Disagreement as err:
                    result.outcome, result.disagreement = "disagrees", err
                    if not result.steps:
                        self._header(scene, backend, number, total)
                    self._disagrees(err)
                    break
                if not result.steps:
                    self._header(scene, backend, number, total)
                else:
                    self._print()
                self.started = True
                result.steps.append(step)
                if not step.applies:
                    result.outcome = "n/a"
                self._print(format_step(len(result.steps), step, self.style, self.width))
        finally:
            steps.close()
            stage.close()
        return result

    def _header(self, scene: Scene, backend: str, number: int, total: int) -> None:
        self._print()
        self._print(self.style("title", f"== {number}/{total} {scene.name} on {backend}: {scene.title}"))
        self._print(self.style("why", f"   {scene.summary}"))

    def _disagrees(self, err: Disagreement) -> None:
        self._print(self.style("bad", "  !! the kernel disagrees with this demo"))
        for label, text in (("do", err.does), ("stated", err.stated), ("kernel", err.answered)):
            self._print(f"    {label:<8}" + self.style("bad", text))


def run_scene(name: str, backend: str) -> SceneResult:
    """Run scene *name* on *backend* without output or pauses (for tests and tools)."""
    with open(os.devnull, "w") as devnull:
        return _Show(devnull, Style(False), None, WRAP).scene(SCENES[name], backend, 1, 1)


def _backends(text: str) -> list[str]:
    names = portaio.available_backends() if text == "all" else [n.strip() for n in text.split(",") if n]
    for name in names:
        if name not in portaio.BACKEND_NAMES:
            raise argparse.ArgumentTypeError(
                f"unknown backend {name!r}; choose from {', '.join(portaio.BACKEND_NAMES)}"
            )
        if name not in portaio.available_backends():
            raise argparse.ArgumentTypeError(
                f"backend {name} is unavailable here: {portaio.unavailable_reasons()[name]}"
            )
    return names


def _delay(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 60:
        raise argparse.ArgumentTypeError(f"the delay must be between 0 and 60 seconds, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``portaio demo``."""
    parser = argparse.ArgumentParser(
        prog="portaio demo",
        description="Step through what the kernel tells you, live: real sockets, a real poller, every"
        " answer checked.  On a terminal Enter advances and q quits; piped, it prints the transcript.",
        epilog="scenes: " + ", ".join(SCENES) + ".  Exit status 1 if the kernel disagreed with a scene.",
    )
    parser.add_argument("scenes", nargs="*", metavar="SCENE", help="scenes to run (default: all, in order)")
    parser.add_argument("--list", action="store_true", help="list the scenes and exit")
    parser.add_argument("--play", action="store_true", help="advance by itself (q still quits on a terminal)")
    parser.add_argument(
        "--delay",
        type=_delay,
        default=2.0,
        metavar="SECONDS",
        help="pause between steps with --play (default 2.0)",
    )
    parser.add_argument(
        "--backend",
        "-b",
        type=_backends,
        metavar="NAME[,NAME]|all",
        help=f"backend(s) to run on (default: the best here, {portaio.default_backend()})",
    )
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour: auto (a terminal without NO_COLOR or TERM=dumb), always, never",
    )
    return parser


def _summary(results: list[SceneResult]) -> tuple[str, int]:
    bad = [r for r in results if r.outcome == "disagrees"]
    na = [f"{r.name} on {r.backend}" for r in results if r.outcome == "n/a"]
    ran = f"{len(results)} scene run(s)"
    if bad:
        return f"demo: THE KERNEL DISAGREED in {', '.join(f'{r.name} on {r.backend}' for r in bad)}", 1
    text = f"demo: {ran}, every kernel answer as stated"
    return text + (f"; parts not applicable here: {', '.join(na)}" if na else ""), 0


def main(argv: Sequence[str] | None = None, out: IO[str] | None = None) -> int:
    """Run ``portaio demo`` with *argv*; returns the exit status."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    out = sys.stdout if out is None else out
    unknown = [name for name in args.scenes if name not in SCENES]
    if unknown:
        print(
            f"portaio demo: unknown scene {', '.join(unknown)}; choose from {', '.join(SCENES)}",
            file=sys.stderr,
        )
        return 2
    if args.list:
        for scene in SCENES.values():
            print(f"{scene.name:11} {scene.title}\n{'':11} {scene.summary}", file=out)
        return 0
    style = Style(colour_wanted(out, args.color))
    interactive = out is sys.stdout and sys.stdin.isatty() and sys.stdout.isatty()
    ansi = interactive and os.environ.get("TERM", "dumb") != "dumb"
    width = min(WRAP, shutil.get_terminal_size().columns) if interactive else WRAP
    try:  # the default honours PORTAIO_BACKEND, which may name a backend this machine lacks
        backends = args.backend or _backends(portaio.default_backend())
    except argparse.ArgumentTypeError as err:
        print(f"portaio demo: {err} (from PORTAIO_BACKEND)", file=sys.stderr)
        return 2
    names = args.scenes or list(SCENES)
    with Pacer(out, style, play=args.play, delay=args.delay, interactive=interactive, ansi=ansi) as pacer:
        try:
            return _play(_Show(out, style, pacer, width), names, backends)
        except KeyboardInterrupt:
            print("\ninterrupted.", file=out)
            return 130
        except BrokenPipeError:  # piped into head, say: the reader has seen enough
            if out is sys.stdout:  # keep Python's exit-time flush from failing again
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)
            return 0


def _play(show: _Show, names: list[str], backends: list[str]) -> int:
    """Every scene of *names* on every backend of *backends*, then the summary; the exit status."""
    out, style = show.out, show.style
    uname = platform.uname()
    python = f"{platform.python_implementation()} {platform.python_version()}"
    print(
        style("title", f"portaio {portaio.__version__} demo on {uname.system} {uname.release}, {python}"),
        file=out,
    )
    if show.pacer is not None and show.pacer.step_mode:
        print(style("why", "Enter: next step   q: quit"), file=out)
    results: list[SceneResult] = []
    for n, name in enumerate(names, 1):
        for backend in backends:
            results.append(show.scene(SCENES[name], backend, n, len(names)))
            if results[-1].outcome == "quit":
                print("\nquit.", file=out)
                return 0
    text, status = _summary(results)
    print("\n" + style("bad" if status else "title", text), file=out)
    return status
