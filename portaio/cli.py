"""The ``portaio`` command (also ``python -m portaio``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import portaio


def _info(args: argparse.Namespace) -> int:
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
    report = {
        "version": portaio.__version__,
        "default": portaio.default_backend() if available else None,
        "backends": backends,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"portaio {portaio.__version__}")
    print(f"default backend: {report['default']}")
    for name, entry in backends.items():
        if not entry["available"]:
            print(f"  {name:7} unavailable: {entry['reason']}")
            continue
        caps = entry["capabilities"]
        modes = [m for m in ("edge", "oneshot", "exclusive", "priority", "rdhup") if caps[m]]
        print(
            f"  {name:7} available  modes: {', '.join(modes) or '-'}; "
            f"wait: {'O(ready)' if caps['o1_wait'] else 'O(registered)'}; "
            f"timeout resolution: {caps['timeout_resolution']:g} s"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``portaio`` command."""
    parser = argparse.ArgumentParser(prog="portaio", description="portaio: one readiness API over every OS.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = sub.add_parser("info", help="backends available here and their capabilities")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(func=_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``portaio`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        args = parser.parse_args(["info", *(argv or [])])
    status: int = args.func(args)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
