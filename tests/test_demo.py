"""``portaio demo``: every scene on every backend, the facts of its transcript, the modes and keys.

The transcript tests run the command as a user would (``python -m portaio
demo``, stdout a pipe) and check, scene by scene, that the kernel answers the
transcript states are there in order — the scene code has already checked
them against the kernel, so a missing line means the demo printed something
else.  Step mode is driven through a pseudo-terminal: Enter advances, ``q``
quits.
"""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
import time
from collections.abc import Generator
from pathlib import Path

import pytest

import portaio
import portaio.demo as demo
from portaio.cli import main as cli_main
from portaio.demo import SCENES, run_scene
from portaio.demo._player import colour_wanted
from portaio.demo._stage import Stage

PACKAGE_ROOT = str(Path(portaio.__file__).resolve().parent.parent)
BACKENDS = portaio.available_backends()


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": PACKAGE_ROOT, "TERM": "xterm", "NO_COLOR": ""}
    env.pop("PORTAIO_BACKEND", None)
    return env


def run_demo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m portaio demo ARGS`` on the portaio under test, stdout a pipe."""
    return subprocess.run(
        [sys.executable, "-m", "portaio", "demo", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
        cwd=PACKAGE_ROOT,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _facts(name: str, backend: str) -> list[str]:
    """Regexes the transcript of scene *name* must show, in order, on *backend*."""
    caps = portaio.backend_class(backend).capabilities
    libkqueue = backend == "kqueue" and sys.platform.startswith("linux")  # Linux has no native kqueue
    fd = r"fd \d+"
    unsupported = r"kernel  Unsupported: portaio\[\w+\]: {} is not supported"
    if name == "level-edge":
        facts = [rf"kernel  {fd} READABLE\n", rf"kernel  {fd} READABLE \(again\)", r"kernel  nothing\n"]
        if caps.edge:
            return [
                *facts,
                rf"kernel  {fd} READABLE\n",
                r"kernel  nothing\n",
                rf"{fd} READABLE; then nothing",
            ]
        return [*facts, unsupported.format("EDGE"), r"n/a     "]
    if name == "drain":
        if not caps.edge:
            return [unsupported.format("EDGE"), r"n/a     "]
        return [
            rf"kernel  {fd} READABLE\n",
            r"kernel  8192 bytes left unread",
            r"kernel  nothing after 0\.2 s — yet 8192 bytes wait",
            r"kernel  4096, 4096, 4096, EAGAIN",
            r"kernel  nothing; 0 bytes unread",
            rf"kernel  {fd} READABLE\n",
        ]
    if name == "scaling":
        verdict = r"x: flat" if caps.o1_wait else r"x: grows with N"
        rows = [rf"{b:7} N = 10: .* N = \d+: .*x\n" for b in BACKENDS]
        return [r"poll\(0\) answers fd \d+ READABLE", r"N = 1000; time poll", verdict, *rows]
    if name == "oneshot":
        answers = ["READABLE", "nothing", "nothing", "READABLE", "nothing", "READABLE"]
        return [(rf"kernel  {fd} READABLE\n" if a == "READABLE" else r"kernel  nothing\n") for a in answers]
    if name == "herd":
        facts = [r"kernel  8 of 8 polls report fd \d+ READABLE; accept\(\): 1 wins, 7 get EAGAIN"]
        if caps.exclusive:
            return [*facts, r"kernel  [1-7] of 8 polls report fd \d+ READABLE; accept\(\): 1 wins"]
        return [*facts, unsupported.format("EXCLUSIVE"), r"n/a     "]
    assert name == "hangups"
    return [
        r"kernel  nothing; then the peer sends 1 byte: fd \d+ READABLE",
        rf"kernel  {fd} READABLE\|RDHUP; recv\(\) gives b'last words', then b'' \(EOF\)",
        rf"kernel  {fd} READABLE\|RDHUP\|HANGUP\n",
        rf"kernel  {fd} (READABLE\|)?HANGUP\|ERROR; "
        + (r"recv\(\) returns b''" if libkqueue else r"recv\(\) raises ConnectionResetError"),
        *[
            rf"{b:7} +nothing +READABLE\|RDHUP +READABLE\|RDHUP\|HANGUP +(READABLE\|)?HANGUP\|ERROR"
            for b in BACKENDS
        ],
    ]


def _sections(transcript: str) -> dict[str, str]:
    """The transcript cut at each scene header (``== i/n NAME on BACKEND: ...``)."""
    parts = re.split(r"^== \d+/\d+ (\S+) on \S+: ", transcript, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def _assert_in_order(text: str, patterns: list[str], where: str) -> None:
    pos = 0
    for pattern in patterns:
        found = re.compile(pattern).search(text, pos)
        assert found, f"{where}: {pattern!r} not found after offset {pos} in:\n{text}"
        pos = found.end()


@pytest.mark.parametrize("backend", BACKENDS)
def test_transcript_of_every_scene_states_the_kernels_answers(backend: str) -> None:
    """No terminal: the whole transcript, exit 0, and each scene's facts in order."""
    result = run_demo("--backend", backend)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "\x1b[" not in result.stdout  # a pipe gets no colour
    sections = _sections(result.stdout)
    assert list(sections) == list(SCENES)
    caps = portaio.backend_class(backend).capabilities
    for name, text in sections.items():
        _assert_in_order(text, _facts(name, backend), f"{name} on {backend}")
    not_applicable = {n for n, t in sections.items() if "n/a     " in t}
    expected = ({"level-edge", "drain"} if not caps.edge else set()) | (
        {"herd"} if not caps.exclusive else set()
    )
    assert not_applicable == expected
    assert "every kernel answer as stated" in result.stdout


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(SCENES))
def test_scene_closes_everything_it_opens(name: str, backend: str) -> None:
    # libkqueue opens two process-wide fds of its own at its first kqueue (and keeps them):
    # a poller made and closed first keeps them out of the count, on every backend alike.
    portaio.Poller(backend).close()
    before = sorted(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    result = run_scene(name, backend)
    assert result.outcome in ("ok", "n/a"), result.disagreement
    assert all(step.does and step.kernel and step.why for step in result.steps)
    if before is None:
        pytest.skip("no /proc/self/fd on this OS: the fd count was not checked")
    assert sorted(os.listdir("/proc/self/fd")) == before


def test_not_applicable_exactly_where_the_backend_lacks_the_mode() -> None:
    for backend in BACKENDS:
        caps = portaio.backend_class(backend).capabilities
        for name, needs in (("level-edge", caps.edge), ("drain", caps.edge), ("herd", caps.exclusive)):
            result = run_scene(name, backend)
            assert result.outcome == ("ok" if needs else "n/a"), (name, backend)
            assert result.steps[-1].applies is needs


def test_a_silent_downgrade_is_caught_and_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """A poller that quietly turns EDGE into level: the scene must disagree, the demo exit 1."""
    if not portaio.backend_class(BACKENDS[0]).capabilities.edge:
        pytest.skip(f"{BACKENDS[0]}, the best backend here, has no edge mode to downgrade")
    real = Stage.poller

    def downgrading(self: Stage, backend: str | None = None) -> portaio.Poller:
        poller = real(self, backend)
        register = poller.register
        poller.register = lambda f, ev, data=None: register(f, ev & ~portaio.EDGE, data)  # type: ignore[method-assign]
        return poller

    monkeypatch.setattr(Stage, "poller", downgrading)
    out = io.StringIO()
    assert demo.main(["level-edge", "--backend", BACKENDS[0]], out=out) == 1
    text = out.getvalue()
    assert "!! the kernel disagrees with this demo" in text
    assert re.search(r"stated  nothing\n    kernel  fd \d+ READABLE", text), text
    assert "THE KERNEL DISAGREED in level-edge" in text


def test_list_names_every_scene_and_the_cli_dispatches(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["demo", "--list"]) == 0
    out = capsys.readouterr().out
    for scene in SCENES.values():
        assert scene.name in out and scene.title in out
    with pytest.raises(SystemExit):
        cli_main(["--help"])
    assert "demo" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuchscene"], "unknown scene nosuchscene"),
        (["--backend", "nosuch"], "unknown backend 'nosuch'"),
        (["--delay", "-1"], "the delay must be between 0 and 60"),
    ],
)
def test_bad_arguments_exit_2_with_a_reason(args: list[str], message: str) -> None:
    result = run_demo(*args)
    assert result.returncode == 2
    assert message in result.stderr


def test_unavailable_backend_says_why() -> None:
    missing = [b for b in portaio.BACKEND_NAMES if b not in BACKENDS]
    if not missing:
        pytest.skip("every backend is available here")
    result = run_demo("--backend", missing[0])
    assert result.returncode == 2
    assert portaio.unavailable_reasons()[missing[0]] in result.stderr


def test_portaio_backend_naming_a_missing_backend_exits_2() -> None:
    env = {**_env(), "PORTAIO_BACKEND": "nosuch"}
    result = subprocess.run(
        [sys.executable, "-m", "portaio", "demo", "oneshot"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=PACKAGE_ROOT,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown backend 'nosuch'" in result.stderr and "PORTAIO_BACKEND" in result.stderr


def test_a_reader_that_goes_away_ends_the_demo_quietly() -> None:
    """``portaio demo | head``: the closed pipe is no traceback, and nothing is left open."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "portaio", "demo", "oneshot", "--backend", "poll"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
        cwd=PACKAGE_ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the demo writes its first line
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(60) == 0, stderr
    assert "Traceback" not in stderr


def test_scenes_by_name_in_the_order_given_and_play_delay_zero() -> None:
    result = run_demo("hangups", "oneshot", "--play", "--delay", "0", "--backend", "poll,select")
    assert result.returncode == 0, result.stderr
    headers = re.findall(r"^== \d+/2 (\S+) on (\S+):", result.stdout, flags=re.M)
    assert headers == [("hangups", "poll"), ("hangups", "select"), ("oneshot", "poll"), ("oneshot", "select")]


def test_colour_follows_the_terminal_and_the_conventions() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert colour_wanted(Tty(), "auto", {"TERM": "xterm"})
    assert not colour_wanted(Tty(), "auto", {"TERM": "xterm", "NO_COLOR": "1"})
    assert not colour_wanted(Tty(), "auto", {"TERM": "dumb"})
    assert not colour_wanted(Tty(), "auto", {})
    assert not colour_wanted(io.StringIO(), "auto", {"TERM": "xterm"})
    assert colour_wanted(io.StringIO(), "always", {"NO_COLOR": "1"})
    assert not colour_wanted(Tty(), "never", {"TERM": "xterm"})
    coloured = run_demo("oneshot", "--backend", "poll", "--color", "always")
    assert coloured.returncode == 0 and "\x1b[32m" in coloured.stdout


# ------------------------------------------------------------ step mode on a pty
class Terminal:
    """``portaio demo ARGS`` on a pseudo-terminal; reads with bounded waits."""

    def __init__(self, *args: str, term: str = "xterm") -> None:
        self.master, slave = pty.openpty()
        env = {**_env(), "TERM": term}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "portaio", "demo", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=PACKAGE_ROOT,
            close_fds=True,
        )
        os.close(slave)
        self.screen = ""
        self.poller = portaio.Poller()
        self.poller.register(self.master, portaio.READABLE)

    def read_until(self, pattern: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.screen):
            left = deadline - time.monotonic()
            assert left > 0, f"{pattern!r} never appeared; the screen so far:\n{self.screen}"
            if self.poller.poll(min(left, 1.0)):
                try:
                    data = os.read(self.master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    data = b""
                if not data:
                    assert re.search(pattern, self.screen), f"{pattern!r} missing at EOF:\n{self.screen}"
                    break
                self.screen += data.decode(errors="replace")
        return self.screen

    def press(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def wait(self, timeout: float = 30.0) -> int:
        """Read the rest of the output until the child closes the terminal; its exit status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.poller.poll(min(1.0, max(0.0, deadline - time.monotonic()))):
                try:
                    data = os.read(self.master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                self.screen += data.decode(errors="replace")
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.poller.close()
        os.close(self.master)


@pytest.fixture
def terminal() -> Generator[list[Terminal], None, None]:
    made: list[Terminal] = []
    yield made
    for term in made:
        term.close()


def test_step_mode_enter_advances_and_q_quits(terminal: list[Terminal]) -> None:
    term = Terminal("level-edge", "--backend", "poll")
    terminal.append(term)
    screen = term.read_until(r"Enter: next   q: quit")
    assert re.search(r"  1 do ", screen) and "  2 do " not in screen
    assert "\x1b[1m" in screen  # a terminal that supports colour gets it
    term.press(b"x")  # other keys do nothing
    term.press(b"\r")
    screen = term.read_until(r"  2 do .*\n(.*\n)*.*Enter: next")
    assert "  3 do " not in screen
    term.press(b"\r")
    term.read_until(r"  3 do ")
    term.press(b"q")
    assert term.wait() == 0
    assert "quit." in term.screen and "  4 do " not in term.screen


def test_step_mode_runs_to_the_end_on_enter(terminal: list[Terminal]) -> None:
    term = Terminal("oneshot", "--backend", "poll", term="dumb")
    terminal.append(term)
    for n in range(1, 8):
        term.read_until(rf"  {n} do (.*\n)*.*Enter: next")
        term.press(b"\n")
    assert term.wait() == 0
    assert "every kernel answer as stated" in term.screen
    assert "\x1b[" not in term.screen  # TERM=dumb: plain text, no erase-line either


def test_live_counter_on_a_terminal_only(terminal: list[Terminal]) -> None:
    """The scaling scene redraws a counter in place on a terminal; a transcript has none."""
    term = Terminal("scaling", "--backend", "poll", "--play", "--delay", "0")
    terminal.append(term)
    assert term.wait(timeout=60) == 0
    live = r"\r\x1b\[K(?:\x1b\[2m)?poll +N = +(\d+) +[\d.]+ µs per wait +#+ \(log\)"
    counters = re.findall(live, term.screen)
    assert len(counters) >= 20 and int(counters[-1]) > int(counters[0]), counters
    piped = run_demo("scaling", "--backend", "poll")
    assert piped.returncode == 0 and "per wait  #" not in piped.stdout


def test_play_mode_on_a_terminal_advances_alone_and_q_quits(terminal: list[Terminal]) -> None:
    term = Terminal("oneshot", "--backend", "poll", "--play", "--delay", "0.05")
    terminal.append(term)
    assert term.wait() == 0
    assert "  7 do " in term.screen and "Enter: next" not in term.screen
    slow = Terminal("oneshot", "--backend", "poll", "--play", "--delay", "30")
    terminal.append(slow)
    slow.read_until(r"  1 do ")
    slow.press(b"q")
    assert slow.wait(timeout=10) == 0
    assert "quit." in slow.screen and "  2 do " not in slow.screen


# --------------------------------------------------- the transcripts in the docs
CAPTURED = Path(__file__).resolve().parent.parent / "docs" / "_demo"


def _skeleton(transcript: str) -> list[str]:
    """The ``do`` and ``why`` texts of a transcript, numbers and line wrapping taken out."""
    flat = re.sub(r"\s+", " ", transcript)
    parts = re.split(r" (\d+ do|kernel|why|n/a) ", flat)
    skeleton = []
    for label, text in zip(parts[1::2], parts[2::2]):
        if label != "kernel":
            text = re.sub(r" [(]try [0-9][)]", "", text)  # the herd scene's retries
            skeleton.append(f"{label.split()[-1]} {re.sub(r'[0-9]+([.][0-9]+)?', 'N', text).strip()}")
    assert skeleton, f"no steps found in:\n{transcript}"
    return skeleton


@pytest.mark.parametrize(
    "path", sorted(CAPTURED.glob("*.txt")) if CAPTURED.is_dir() else [], ids=lambda p: p.stem
)
def test_docs_transcripts_match_what_the_scenes_say_now(path: Path) -> None:
    """docs/demo.rst shows captured transcripts: re-capture (docs/_demo/capture.py) after changing a scene."""
    name, backend = path.stem.rsplit("-", 1)
    if backend not in BACKENDS:
        pytest.skip(f"the transcript was captured on {backend}, which is unavailable here")
    if name == "scaling" and os.sysconf("SC_OPEN_MAX") < 4200:
        pytest.skip("ulimit -n is below 4,200: the scaling scene stops adding fds earlier here")
    out = io.StringIO()
    assert demo.main([name, "--backend", backend, "--color", "never"], out=out) == 0, out.getvalue()
    fresh = out.getvalue().split("\ndemo: ")[0]  # without the run's summary line
    assert _skeleton(path.read_text()) == _skeleton(fresh)


def test_every_scene_has_a_transcript_in_the_docs() -> None:
    if not CAPTURED.is_dir():
        pytest.skip(f"{CAPTURED} is not here (tests run outside the repository)")
    assert {p.stem.rsplit("-", 1)[0] for p in CAPTURED.glob("*.txt")} == set(SCENES)
