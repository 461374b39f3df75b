"""The ``portaio`` command: info, conformance, bench and echo dispatch, errors and help."""

from __future__ import annotations

import io
import json
import os
import platform
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import portaio
from portaio import _progress, _tuning
from portaio.cli import BENCHMARKS, main

PACKAGE_ROOT = str(Path(portaio.__file__).resolve().parent.parent)


def run_cli(
    *args: str, extra_path: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python -m portaio ARGS`` on the portaio under test, in a child process."""
    paths = [PACKAGE_ROOT] + ([extra_path] if extra_path else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    env.pop("PORTAIO_BACKEND", None)
    return subprocess.run(
        [sys.executable, "-m", "portaio", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=PACKAGE_ROOT,
        check=False,
    )


def fake_module(monkeypatch: pytest.MonkeyPatch, name: str, result: Any = 0) -> list[list[str]]:
    """Install a module *name* whose ``main(argv)`` records argv and returns *result*."""
    calls: list[list[str]] = []
    module = types.ModuleType(name)

    def fake_main(argv: list[str]) -> Any:
        calls.append(list(argv))
        if isinstance(result, BaseException):
            raise result
        print(f"{name} ran")
        return result

    module.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, name, module)
    return calls


# ------------------------------------------------------------------- info
def test_info_text_lists_backends_default_kernel_and_tuning(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"default backend: {portaio.default_backend()}" in out
    assert platform.release() in out
    for name in portaio.BACKEND_NAMES:
        assert f"  {name}" in out
    for name, reason in portaio.unavailable_reasons().items():
        assert f"{name:7} unavailable: {reason}" in out
    assert "ulimit -n" in out
    if sys.platform.startswith("linux"):
        for sysctl in ("fs.epoll.max_user_watches", "net.core.somaxconn", "net.ipv4.ip_local_port_range"):
            assert sysctl in out


def test_info_json_is_complete(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["version"] == portaio.__version__
    assert report["default"] == portaio.default_backend()
    assert report["platform"]["kernel"] == platform.release()
    assert list(report["backends"]) == list(portaio.BACKEND_NAMES)
    for name, entry in report["backends"].items():
        if name in portaio.available_backends():
            assert entry["capabilities"] == portaio.backend_class(name).capabilities.as_dict()
        else:
            assert entry == {"available": False, "reason": portaio.unavailable_reasons()[name]}
    names = [check["name"] for check in report["tuning"]]
    assert names[0].startswith("ulimit -n")
    for check in report["tuning"]:
        assert set(check) == {"name", "value", "wanted", "ok", "command", "why", "note"}
        if check["ok"] is False:
            assert check["command"], check


def test_no_command_means_info_and_version() -> None:
    done = run_cli()
    assert done.returncode == 0, done.stderr
    assert "default backend:" in done.stdout and "tuning" in done.stdout
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"portaio {portaio.__version__}"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's /proc/sys")
def test_tuning_doctor_reads_the_kernel_values() -> None:
    import resource

    checks = {check.name: check for check in _tuning.checks()}
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    shown = ["unlimited" if n == resource.RLIM_INFINITY else str(n) for n in (soft, hard)]
    assert checks["ulimit -n (soft/hard)"].value == " / ".join(shown)
    watches = Path("/proc/sys/fs/epoll/max_user_watches").read_text().strip()
    assert checks["fs.epoll.max_user_watches"].value == watches
    assert checks["fs.epoll.max_user_watches"].ok == (int(watches) >= _tuning.WANTED_WATCHES)
    somaxconn = Path("/proc/sys/net/core/somaxconn").read_text().strip()
    assert checks["net.core.somaxconn"].value == somaxconn
    assert (
        checks["net.core.somaxconn"].command
        == f"sudo sysctl -w net.core.somaxconn={_tuning.WANTED_SOMAXCONN}"
    )
    assert checks["net.ipv4.ip_local_port_range"].command.startswith(
        "sudo sysctl -w net.ipv4.ip_local_port_range="
    )


# ------------------------------------------------------------ bad input, help
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["info", "--bogus"], "unrecognized arguments: --bogus"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["conformance", "--backend", "nope"], "unknown backend nope"),
        (["conformance", "--backend", "epoll,iocp"], "unknown backend iocp"),
        (["bench"], "required: NAME"),
        (["bench", "--fast"], "required: NAME"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_unknown_benchmark_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown benchmark 'nope'" in err and "scaling" in err


@pytest.mark.parametrize("command", ["info", "conformance", "bench"])
def test_help_on_every_subcommand(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: portaio {command}")
    if command == "bench":
        for name in BENCHMARKS:
            assert name in out


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("info", "conformance", "bench", "echo"):
        assert command in out


# ------------------------------------------------------------- bench, echo
def test_bench_passes_every_argument_to_the_module(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = fake_module(monkeypatch, "portaio.bench.timers", result=None)
    assert main(["bench", "timers", "--help", "-k", "x", "--plot", "f.png"]) == 0
    assert calls == [["--help", "-k", "x", "--plot", "f.png"]]
    assert "portaio.bench.timers ran" in capsys.readouterr().out


def test_bench_returns_the_module_status_and_argparse_exits(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_module(monkeypatch, "portaio.bench.scaling", result=3)
    assert main(["bench", "scaling"]) == 3
    fake_module(monkeypatch, "portaio.bench.dispatch", result=SystemExit(2))
    assert main(["bench", "dispatch", "--ready", "x"]) == 2


def test_bench_module_missing_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "portaio.bench.selectors", None)
    monkeypatch.setitem(sys.modules, "portaio.bench.selectors_dispatch", None)
    assert main(["bench", "selectors"]) == 2
    err = capsys.readouterr().err
    assert "the selectors benchmark is not part of this installation" in err
    assert "portaio.bench.selectors" in err


def test_bench_selectors_also_runs_selectors_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "portaio.bench.selectors", None)
    calls = fake_module(monkeypatch, "portaio.bench.selectors_dispatch")
    assert main(["bench", "selectors", "--rounds", "3"]) == 0
    assert calls == [["--rounds", "3"]]


def test_echo_dispatches_with_its_own_help(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_module(monkeypatch, "portaio.echo")
    assert main(["echo", "--port", "0", "--workers", "2"]) == 0
    assert main(["echo", "--help"]) == 0
    assert calls == [["--port", "0", "--workers", "2"], ["--help"]]


def test_echo_missing_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "portaio.echo", None)
    assert main(["echo"]) == 2
    assert "the echo server is not part of this installation" in capsys.readouterr().err


# ------------------------------------------------------------ conformance
def test_conformance_runs_the_shipped_suite_and_prints_the_matrix(tmp_path: Path) -> None:
    junit = tmp_path / "conformance.xml"
    done = run_cli("conformance", "--backend", "select", "-k", "level", "--junit", str(junit))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    header = next(line for line in lines if line.startswith("behaviour"))
    assert header.split() == ["behaviour", "select"]
    cells = [line.split()[-1] for line in lines if line.startswith("level: ")]
    assert "pass" in cells and set(cells) <= {"pass", "unsupported"}, done.stdout
    xml = junit.read_text()
    assert "<testcase" in xml and 'failures="0"' in xml


def test_conformance_failure_exits_non_zero_and_shows_fail(tmp_path: Path) -> None:
    (tmp_path / "break_select.py").write_text(
        "def pytest_runtest_call(item):\n"
        "    if item.nodeid.endswith('[select]'):\n"
        "        raise AssertionError('broken on purpose')\n"
    )
    done = run_cli(
        "conformance",
        "-b",
        "poll",
        "-b",
        "select",
        "-k",
        "level",
        "-p",
        "break_select",
        extra_path=str(tmp_path),
    )
    assert done.returncode == 1, done.stdout + done.stderr
    rows = [line.split()[-2:] for line in done.stdout.splitlines() if line.startswith("level: ")]
    assert rows and all(poll in ("pass", "unsupported") and select == "FAIL" for poll, select in rows), rows
    assert "FAILED" in done.stderr


def test_conformance_shows_unavailable_backends_with_the_reason() -> None:
    reasons = portaio.unavailable_reasons()
    if not reasons:
        pytest.skip("every backend is available on this machine")
    name, reason = next(iter(reasons.items()))
    done = run_cli("conformance", "--backend", f"{name},select", "-k", "level")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line.split()[-2:] for line in done.stdout.splitlines() if line.startswith("level: ")]
    assert rows and all(other == "n/a" and select in ("pass", "unsupported") for other, select in rows), rows
    assert f"{name}: {reason}" in done.stdout


def test_conformance_selecting_nothing_is_reported() -> None:
    done = run_cli("conformance", "--backend", "select", "-k", "no_such_case_anywhere")
    assert done.returncode == 5
    assert "no conformance case was selected" in done.stderr


def test_conformance_without_pytest_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "pytest", None)
    assert main(["conformance"]) == 2
    assert "pip install 'portaio[test]'" in capsys.readouterr().err


# --------------------------------------------------------------- progress
class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_only_on_a_terminal() -> None:
    piped = io.StringIO()
    assert list(_progress.steps(range(3), "sizes", stream=piped)) == [0, 1, 2]
    with _progress.Ticker("run", stream=piped) as ticker:
        assert not ticker.enabled
    assert piped.getvalue() == ""
    tty = FakeTerminal()
    assert list(_progress.steps([10, 20], "sizes", stream=tty)) == [10, 20]
    drawn = tty.getvalue()
    assert "sizes [" in drawn and "1/2" in drawn and drawn.endswith("\r\x1b[K")


@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_each_installed_benchmark_answers_help_through_the_command(name: str) -> None:
    import importlib.util

    from portaio.cli import _BENCH_MODULES

    found = False
    for module in _BENCH_MODULES.get(name, (f"portaio.bench.{name}",)):
        try:
            found = found or importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            pass
    if not found:
        pytest.skip(f"portaio.bench.{name} is not part of this build yet")
    done = run_cli("bench", name, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: "), done.stdout


def test_matrix_classifies_every_outcome() -> None:
    from portaio.conformance.runner import Matrix

    def report(nodeid: str, when: str, outcome: str, longrepr: Any = None, **extra: Any) -> Any:
        return types.SimpleNamespace(
            nodeid=nodeid,
            when=when,
            passed=outcome == "passed",
            failed=outcome == "failed",
            skipped=outcome == "skipped",
            longrepr=longrepr,
            **extra,
        )

    matrix = Matrix(["epoll", "select"])
    base = "portaio/conformance/x_cases.py::test_thing"
    matrix.pytest_runtest_logreport(report(f"{base}[epoll]", "call", "passed"))
    matrix.pytest_runtest_logreport(
        report(f"{base}[select]", "setup", "skipped", ("f", 1, "Skipped: needs root"))
    )
    matrix.pytest_runtest_logreport(
        report(f"{base}_b[epoll-pipe]", "call", "skipped", ("f", 1, "EDGE by design"))
    )
    matrix.pytest_runtest_logreport(
        report(f"{base}_b[select-pipe]", "call", "skipped", None, wasxfail="known")
    )
    matrix.pytest_runtest_logreport(report(f"{base}_c[select]", "call", "passed"))
    matrix.pytest_runtest_logreport(report(f"{base}_c[select]", "teardown", "failed", "boom"))
    matrix.pytest_runtest_logreport(report("portaio/conformance/x_cases.py::test_plain", "call", "passed"))
    assert matrix.cells == {
        "x: thing": {"epoll": "pass", "select": "skip [1]"},
        "x: thing b [pipe]": {"epoll": "unsupported", "select": "xfail"},
        "x: thing c": {"select": "FAIL"},
        "x: plain": {"any": "pass"},
    }
    assert matrix.reasons == ["needs root"]
    assert matrix.columns() == ["epoll", "select", "any"]
    rendered = matrix.render()
    assert "[1] needs root" in rendered and rendered.splitlines()[0].split() == [
        "behaviour",
        "epoll",
        "select",
        "any",
    ]
