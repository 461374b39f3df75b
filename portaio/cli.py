"""The ``portaio`` command (also ``python -m portaio``).

``info``         backends, capabilities, kernel and a tuning doctor (``--json``)
``conformance``  the shipped conformance suite on the installed package
``bench NAME``   the benchmarks of :mod:`portaio.bench`
``echo``         the edge-triggered echo server of :mod:`portaio.echo`
``demo``         step through what the kernel tells you, live (:mod:`portaio.demo`)
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
from collections.abc import Callable, Sequence
from typing import Any

import portaio

from . import _tuning
from ._progress import Ticker

__all__ = ["BENCHMARKS", "build_parser", "main"]

BENCHMARKS = {
    "scaling": "wait cost against registered idle fds: O(ready) vs O(registered) (--plot FILE.png)",
    "dispatch": "dispatch of R ready events out of 1,000, against selectors and select.epoll",
    "timers": "timer lateness and drift, against asyncio (and uvloop if installed)",
    "echo": "echo server requests per second and CPU, against asyncio and select.epoll",
    "selectors": "PortaioSelector.select() against the standard library's selectors",
}
"""The benchmarks ``portaio bench`` runs: module ``portaio.bench.<name>``, each with ``main(argv)``."""

_BENCH_MODULES = {"selectors": ("portaio.bench.selectors_dispatch",)}
"""Benchmarks whose module has another name (``portaio.bench.selectors`` would shadow the stdlib's)."""

_PROG = "portaio"


class CommandError(Exception):
    """A failure to report as ``portaio: message`` with exit status 2."""


# ----------------------------------------------------------------------- info
def _platform_report() -> dict[str, str]:
    uname = platform.uname()
    return {
        "system": uname.system,
        "kernel": uname.release,
        "kernel_build": uname.version,
        "machine": uname.machine,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
    }


def info_report() -> dict[str, Any]:
    """Everything ``portaio info`` shows, as plain data (the ``--json`` output)."""
    reasons = portaio.unavailable_reasons()
    available = portaio.available_backends()
    backends: dict[str, dict[str, Any]] = {
        name: (
            {"available": True, "capabilities": portaio.backend_class(name).capabilities.as_dict()}
            if name in available
            else {"available": False, "reason": reasons[name]}
        )
        for name in portaio.BACKEND_NAMES
    }
    try:
        default: str | None = portaio.backend_class(None).name
        default_error = None
    except portaio.BackendUnavailable as err:
        default, default_error = None, str(err)
    report: dict[str, Any] = {
        "version": portaio.__version__,
        "platform": _platform_report(),
        "default": default,
        "default_from_env": os.environ.get("PORTAIO_BACKEND") or None,
        "backends": backends,
        "tuning": [check.as_dict() for check in _tuning.checks()],
    }
    if default_error:
        report["default_error"] = default_error
    return report


def _modes(caps: dict[str, Any]) -> str:
    modes = [m for m in ("edge", "oneshot", "exclusive", "priority", "rdhup") if caps.get(m)]
    return ", ".join(modes) or "-"


def format_seconds(value: float) -> str:
    """A duration in the largest of ms, µs and ns that keeps it at or above 1."""
    if value >= 1e-3:
        return f"{value * 1e3:g} ms"
    if value >= 1e-6:
        return f"{value * 1e6:g} µs"
    return f"{value * 1e9:g} ns"


def _info(args: argparse.Namespace) -> int:
    report = info_report()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    plat = report["platform"]
    where = f"{plat['system']} {plat['kernel']} ({plat['machine']})"
    print(f"portaio {report['version']} on {plat['python']}, {where}")
    if report["default"]:
        source = f" (from PORTAIO_BACKEND={report['default_from_env']})" if report["default_from_env"] else ""
        print(f"default backend: {report['default']}{source}")
    else:
        print(f"default backend: none: {report.get('default_error')}")
    print("backends, best first:")
    for name, entry in report["backends"].items():
        if not entry["available"]:
            print(f"  {name:7} unavailable: {entry['reason']}")
            continue
        caps = entry["capabilities"]
        print(
            f"  {name:7} modes: {_modes(caps)}; wait {'O(ready)' if caps['o1_wait'] else 'O(registered)'};"
            f" timeout resolution {format_seconds(caps['timeout_resolution'])}"
            + (f"; fds up to {caps['max_fd']}" if caps.get("max_fd") is not None else "")
        )
        print(
            f"          timers: {caps['native_timers']}; signals: {caps['native_signals']};"
            f" wake-ups: {caps['native_wake']}"
        )
    print("tuning for many connections (C10K and beyond):")
    width = max(len(check["name"]) for check in report["tuning"])
    for check in report["tuning"]:
        state = {True: "ok ", False: "LOW", None: "?  "}[check["ok"]]
        print(f"  [{state}] {check['name']:{width}}  {check['value']}  (wanted {check['wanted']})")
        if check["ok"] is not True:
            print(f"        {check['why']}")
            if check["command"]:
                print(f"        raise it: {check['command']}")
            if check.get("note"):
                print(f"        ({check['note']})")
    return 0


# --------------------------------------------------------------- conformance
def _backend_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in portaio.BACKEND_NAMES]
    if unknown or not names:
        known = ", ".join(portaio.BACKEND_NAMES)
        raise argparse.ArgumentTypeError(
            f"unknown backend {', '.join(unknown) or repr(text)}; choose from {known}"
        )
    return names


def _conformance(args: argparse.Namespace) -> int:
    try:
        import pytest  # noqa: F401
    except ImportError:
        raise CommandError(
            "conformance needs pytest, which is not installed: pip install 'portaio[test]'"
        ) from None
    from .conformance import runner

    backends: list[str] = []
    for group in args.backend or [list(portaio.BACKEND_NAMES)]:
        backends += [name for name in group if name not in backends]
    if not runner.case_files():
        raise CommandError("no conformance cases found in this installation (portaio/conformance/*_cases.py)")
    pytest_args = list(args.pytest_args)
    if args.keyword:
        pytest_args += ["-k", args.keyword]
    if args.exitfirst:
        pytest_args.append("-x")
    status, matrix = runner.run(backends, pytest_args, junit=args.junit)
    print()
    if matrix.collect_errors:
        print("the suite could not be loaded:")
        for error in matrix.collect_errors:
            print(f"  {error}")
    if matrix.cells:
        print(f"conformance of portaio {portaio.__version__} ({os.path.dirname(portaio.__file__)}):")
        print(matrix.render())
    if args.junit:
        print(f"JUnit XML written to {args.junit}")
    if status == 5:
        print("no conformance case was selected (check --backend and -k)", file=sys.stderr)
        return 5
    if matrix.failures or status != 0:
        print(f"FAILED: {len(matrix.failures)} case(s)", file=sys.stderr)
        return status or 1
    return 0


# --------------------------------------------------------------- bench, echo
def _load_main(module_names: Sequence[str], what: str) -> Callable[[list[str]], int | None]:
    for module_name in module_names:
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            if err.name is not None and module_name.startswith(err.name):
                continue  # not in this installation: try the next name
            raise CommandError(f"{what} needs a module that is not installed: {err}") from None
        break
    else:
        raise CommandError(f"{what} is not part of this installation (no module {module_names[0]})")
    entry = getattr(module, "main", None)
    if not callable(entry):
        raise CommandError(f"{module_name} has no main(argv) function")
    return entry  # type: ignore[no-any-return]


def _run_main(entry: Callable[[list[str]], int | None], argv: list[str], label: str) -> int:
    try:
        with Ticker(label):
            status = entry(argv)
    except SystemExit as exit_:  # argparse inside the module: --help or a bad argument
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 2)
    except KeyboardInterrupt:
        print(f"\n{_PROG}: {label} interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


def run_bench(name: str, argv: Sequence[str]) -> int:
    """Run benchmark *name* (a key of :data:`BENCHMARKS`) with its own arguments."""
    if name not in BENCHMARKS:
        raise CommandError(f"bench: unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
    entry = _load_main(_BENCH_MODULES.get(name, (f"portaio.bench.{name}",)), f"the {name} benchmark")
    return _run_main(entry, list(argv), f"bench {name}")


def run_echo(argv: Sequence[str]) -> int:
    """Run the echo server of :mod:`portaio.echo` with its own arguments."""
    entry = _load_main(("portaio.echo",), "the echo server")
    return _run_main(entry, list(argv), "echo") if "-h" in argv or "--help" in argv else _plain(entry, argv)


def _plain(entry: Callable[[list[str]], int | None], argv: Sequence[str]) -> int:
    # A server runs until stopped: no progress ticker over its output.
    try:
        status = entry(list(argv))
    except KeyboardInterrupt:
        return 130
    return int(status or 0)


def run_demo(argv: Sequence[str]) -> int:
    """Run the walkthrough of :mod:`portaio.demo` with its own arguments."""
    entry = _load_main(("portaio.demo",), "the demo")
    try:
        return int(entry(list(argv)) or 0)
    except SystemExit as exit_:  # argparse inside the module: --help or a bad argument
        return exit_.code if isinstance(exit_.code, int) else 0


def _demo(args: argparse.Namespace) -> int:
    return run_demo(args.args)


def _bench(args: argparse.Namespace) -> int:
    return run_bench(args.name, args.args)


def _echo(args: argparse.Namespace) -> int:
    return run_echo(args.args)


# -------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``portaio`` command."""
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="portaio: one readiness API over epoll, kqueue, AFD (Windows), poll and select.",
        epilog="Without a command, portaio runs 'info'.  'portaio COMMAND --help' describes each command.",
    )
    parser.add_argument("--version", action="version", version=f"portaio {portaio.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    info = sub.add_parser(
        "info",
        help="backends here, their capabilities, the kernel, and a tuning doctor",
        description="Show the backends this machine offers (best first) and what each honours natively,"
        " the kernel, and the limits that cap how many connections a server can hold, each with"
        " the value a C10K+ server wants and the command that raises it.",
    )
    info.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    info.set_defaults(func=_info)

    conf = sub.add_parser(
        "conformance",
        help="run the conformance suite on the installed package (needs pytest)",
        description="Run the conformance suite shipped in portaio.conformance against the installed"
        " portaio, on every backend (or those given), and print a matrix of behaviours x backends."
        " Exits non-zero if any case fails.  Options it does not know are passed to pytest.",
    )
    conf.add_argument(
        "--backend",
        "-b",
        action="append",
        type=_backend_list,
        metavar="NAME[,NAME]",
        help=f"backends to test (repeatable; default: all of {', '.join(portaio.BACKEND_NAMES)})",
    )
    conf.add_argument("--junit", metavar="FILE", help="also write a JUnit XML report to FILE (for CI)")
    conf.add_argument(
        "-k", dest="keyword", metavar="EXPR", help="only cases matching the pytest -k expression"
    )
    conf.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first failure")
    conf.set_defaults(func=_conformance, pytest_args=[])

    bench = sub.add_parser(
        "bench",
        help="run a benchmark (ratios against the standard library, measured in one run)",
        description="Run one of portaio's benchmarks.  Arguments after the name go to the benchmark:"
        " 'portaio bench NAME --help' lists them.",
        epilog="benchmarks:\n" + "\n".join(f"  {name:10} {text}" for name, text in BENCHMARKS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage=f"{_PROG} bench [-h] NAME [ARGS...]",
    )
    bench.add_argument("name", choices=list(BENCHMARKS), metavar="NAME", help=", ".join(BENCHMARKS))
    bench.set_defaults(func=_bench, args=[])

    echo = sub.add_parser(
        "echo",
        help="run the edge-triggered echo server",
        description="Run portaio's edge-triggered echo server; 'portaio echo --help' lists its options.",
        add_help=False,
        usage=f"{_PROG} echo [ARGS...]",
    )
    echo.set_defaults(func=_echo, args=[])

    demo = sub.add_parser(
        "demo",
        help="step through what the kernel tells you, live (level/edge, EAGAIN, O(N), herd, hang-ups)",
        description="A walkthrough of short scenes on real sockets; 'portaio demo --help' lists its options.",
        add_help=False,
        usage=f"{_PROG} demo [ARGS...]",
    )
    demo.set_defaults(func=_demo, args=[])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``portaio`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        # bench NAME and echo hand every later argument, --help included, to the module.
        if argv[:1] == ["echo"]:
            return run_echo(argv[1:])
        if argv[:1] == ["demo"]:
            return run_demo(argv[1:])
        if argv[:1] == ["bench"] and len(argv) > 1 and not argv[1].startswith("-"):
            return run_bench(argv[1], argv[2:])
        args, extra = parser.parse_known_args(argv)
        if args.command is None:
            args, extra = parser.parse_known_args(["info", *argv])
        if extra:
            if args.command != "conformance":
                parser.error(f"unrecognized arguments: {' '.join(extra)}")
            args.pytest_args = [a for a in extra if a != "--"]
        status: int = args.func(args)
        return status
    except CommandError as err:
        print(f"{_PROG}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
