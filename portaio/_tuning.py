"""The tuning doctor of ``portaio info``: limits that cap how many connections a server holds.

Each check reads the current value, says what a server holding tens of
thousands of connections (C10K and beyond) wants, and the exact command that
raises it.  Checks that do not apply to this OS are left out; a value that
cannot be read is reported as unknown, never guessed.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["WANTED_FDS", "Check", "checks"]

WANTED_FDS = 65536
"""Open files a C10K+ server wants: one per connection, with room to spare."""
WANTED_WATCHES = 1048576
WANTED_SOMAXCONN = 4096
WANTED_PORTS = 50000
WANTED_NR_OPEN = 1048576


@dataclasses.dataclass(frozen=True)
class Check:
    """One limit: where it stands, what is wanted, and how to raise it."""

    name: str
    """What is checked (``ulimit -n``, a sysctl name)."""
    value: str
    """The current value, or ``"unknown"``."""
    wanted: str
    """The value a C10K+ server wants."""
    ok: bool | None
    """True if the current value is enough, None if it could not be read."""
    command: str
    """The exact command that raises it."""
    why: str
    """What the limit caps."""
    note: str = ""
    """What else to know about raising it."""

    def as_dict(self) -> dict[str, Any]:
        """The check as a plain dict (for JSON output)."""
        return dataclasses.asdict(self)


def _proc(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _sysctl(name: str) -> str | None:
    try:
        done = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _at_least(name: str, raw: str | None, wanted: int, command: str, why: str) -> Check:
    value = _int(raw)
    return Check(
        name=name,
        value="unknown" if value is None else str(value),
        wanted=f">= {wanted}",
        ok=None if value is None else value >= wanted,
        command=command,
        why=why,
    )


def _nofile() -> Check:
    if sys.platform == "win32":  # no per-process fd limit to raise: sockets are handles
        return Check("ulimit -n", "n/a (Windows)", f">= {WANTED_FDS}", None, "", "no such limit on Windows")
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    def show(limit: int) -> str:
        return "unlimited" if limit == resource.RLIM_INFINITY else str(limit)

    ok = (soft == resource.RLIM_INFINITY or soft >= WANTED_FDS) and (
        hard == resource.RLIM_INFINITY or hard >= WANTED_FDS
    )
    if hard != resource.RLIM_INFINITY and hard < WANTED_FDS:
        if sys.platform.startswith("linux"):
            command = f"echo '* - nofile {WANTED_NR_OPEN}' | sudo tee -a /etc/security/limits.conf"
            note = (
                f"hard limit too low: log in again, then ulimit -n {WANTED_FDS};"
                f" systemd units: LimitNOFILE={WANTED_NR_OPEN}"
            )
        else:
            command = f"sudo launchctl limit maxfiles {WANTED_FDS} {WANTED_FDS}"
            note = "the hard limit is too low (macOS; on the BSDs raise openfiles in /etc/login.conf)"
    else:
        command = f"ulimit -n {WANTED_FDS if hard == resource.RLIM_INFINITY else max(WANTED_FDS, hard)}"
        note = "in the shell that starts the server (up to the hard limit, no root needed)"
    return Check(
        name="ulimit -n (soft/hard)",
        value=f"{show(soft)} / {show(hard)}",
        wanted=f">= {WANTED_FDS}",
        ok=ok,
        command=command,
        why="open files per process: each connection is one fd",
        note=note,
    )


def _port_range(name: str, low: int | None, high: int | None, command: str) -> Check:
    span = None if low is None or high is None else high - low + 1
    return Check(
        name=name,
        value="unknown" if span is None else f"{low}-{high} ({span} ports)",
        wanted=f">= {WANTED_PORTS} ports",
        ok=None if span is None else span >= WANTED_PORTS,
        command=command,
        why="outgoing connections per destination address and port (load generators, proxies)",
    )


def _linux() -> list[Check]:
    ports = (_proc("/proc/sys/net/ipv4/ip_local_port_range") or "").split()
    low, high = (_int(ports[0]), _int(ports[1])) if len(ports) == 2 else (None, None)
    # sysctl -w lasts until reboot; a file in /etc/sysctl.d/ makes it permanent.
    return [
        _at_least(
            "fs.nr_open",
            _proc("/proc/sys/fs/nr_open"),
            WANTED_NR_OPEN,
            f"sudo sysctl -w fs.nr_open={WANTED_NR_OPEN}",
            "the ceiling of any process's hard ulimit -n",
        ),
        _at_least(
            "fs.epoll.max_user_watches",
            _proc("/proc/sys/fs/epoll/max_user_watches"),
            WANTED_WATCHES,
            f"sudo sysctl -w fs.epoll.max_user_watches={WANTED_WATCHES}",
            "fds one user may register with all its epoll instances",
        ),
        _at_least(
            "net.core.somaxconn",
            _proc("/proc/sys/net/core/somaxconn"),
            WANTED_SOMAXCONN,
            f"sudo sysctl -w net.core.somaxconn={WANTED_SOMAXCONN}",
            "the longest accept queue listen() may ask for",
        ),
        _port_range(
            "net.ipv4.ip_local_port_range",
            low,
            high,
            'sudo sysctl -w net.ipv4.ip_local_port_range="1024 65535"',
        ),
    ]


def _bsd() -> list[Check]:
    first, last = _int(_sysctl("net.inet.ip.portrange.first")), _int(_sysctl("net.inet.ip.portrange.last"))
    return [
        _at_least(
            "kern.maxfilesperproc",
            _sysctl("kern.maxfilesperproc"),
            WANTED_FDS,
            f"sudo sysctl -w kern.maxfilesperproc={WANTED_FDS}",
            "the ceiling of any process's ulimit -n",
        ),
        _at_least(
            "kern.ipc.somaxconn",
            _sysctl("kern.ipc.somaxconn"),
            WANTED_SOMAXCONN,
            f"sudo sysctl -w kern.ipc.somaxconn={WANTED_SOMAXCONN}",
            "the longest accept queue listen() may ask for",
        ),
        _port_range("net.inet.ip.portrange", first, last, "sudo sysctl -w net.inet.ip.portrange.first=1024"),
    ]


def checks() -> list[Check]:
    """Every check that applies to this OS."""
    out = [_nofile()]
    if sys.platform.startswith("linux"):
        out += _linux()
    elif sys.platform == "darwin" or "bsd" in sys.platform:
        out += _bsd()
    return out
