"""Draw docs/_static/layers.svg: the layers of portaio and the path of one poll().

Run by ``docs/conf.py`` at every build (and by hand: ``python docs/_ext/layers_svg.py``),
so the picture is made by this script and nothing else: plain SVG text, no
external tool.
"""

from __future__ import annotations

import sys
from pathlib import Path
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 860, 560

# (x, y, w, h, title, lines, fill)
BOXES = [
    (
        20,
        20,
        820,
        70,
        "Poller  (_poller.py, _poll_loop.py, _host.py)",
        [
            "argument checks · registration table (fd → private _Reg, token → _Reg) · event cache",
            "ONE poll loop: sources first (unless the kernel is owed), kernel wait, sources after",
        ],
        "#e8f0fe",
    ),
    (20, 120, 150, 70, "timers", ["TimerQueue (_timers.py)", "heap of deadlines"], "#fef7e0"),
    (185, 120, 150, 70, "signals", ["PollerSignals", "arrivals (deque)"], "#fef7e0"),
    (350, 120, 150, 70, "wake flag", ["wake() → pending", "→ WAKE event"], "#fef7e0"),
    (515, 120, 150, 70, "always-ready files", ["AlwaysReadyFiles", "(_regular_files.py)"], "#fef7e0"),
    (680, 120, 160, 70, "the kernel", ["Backend.wait()", "→ list of uint64 keys"], "#e6f4ea"),
    (
        20,
        240,
        480,
        100,
        "mechanisms chosen once at open (one file each)",
        [
            "Waker: EventfdWaker · UserWaker (EVFILT_USER) · PipeWaker",
            "TimerMechanism: TimerfdTimer · KqueueTimer · WaitTimeout",
            "SignalMechanism: SharedSignals(signalfd, wakeup fd) · KqueueSignals",
            "plug in through Host: watch(fd) / new_token() → handler(flags)",
        ],
        "#fce8e6",
    ),
    (
        520,
        240,
        320,
        100,
        "Backend  (backends/_base.py contract)",
        [
            "EpollBackend · KqueueBackend · PollBackend · SelectBackend",
            "add · modify · remove · disarm · wait · events_of · close",
            "make_waker · make_timer · make_signals",
        ],
        "#e6f4ea",
    ),
    (
        520,
        370,
        320,
        70,
        "C waits  (csrc/*.c, -Wall -Wextra -Werror)",
        ["keys[i] = token | kernel flags << 32", "one struct unpack → ints"],
        "#f1f3f4",
    ),
    (
        20,
        370,
        480,
        70,
        "standard library",
        ["select.poll / select.select (poll, select backends)", "os.pipe · signal.set_wakeup_fd"],
        "#f1f3f4",
    ),
    (
        20,
        470,
        820,
        60,
        "the OS kernel",
        ["epoll_pwait2 · kevent · poll(2) · select(2) · eventfd · timerfd · signalfd"],
        "#ffffff",
    ),
]

# (x1, y1, x2, y2, label)
ARROWS = [
    (95, 90, 95, 120, "1"),
    (260, 90, 260, 120, ""),
    (425, 90, 425, 120, ""),
    (590, 90, 590, 120, ""),
    (760, 90, 760, 120, "2"),
    (760, 190, 760, 240, ""),
    (680, 340, 680, 370, ""),
    (680, 440, 680, 470, ""),
    (260, 340, 260, 370, ""),
    (260, 440, 260, 470, ""),
    (500, 290, 520, 290, ""),
]


def svg() -> str:
    """The SVG document."""
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}"'
        f' viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif">',
        "<defs><marker id='a' markerWidth='10' markerHeight='8' refX='9' refY='4' orient='auto'>"
        "<path d='M0,0 L10,4 L0,8 z' fill='#444'/></marker></defs>",
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
    ]
    for x, y, w, h, title, lines, fill in BOXES:
        out.append(f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" fill="{fill}" stroke="#555"/>')
        out.append(f'<text x="{x + 8}" y="{y + 18}" font-size="13" font-weight="bold">{escape(title)}</text>')
        for i, line in enumerate(lines):
            out.append(f'<text x="{x + 8}" y="{y + 36 + 15 * i}" font-size="11">{escape(line)}</text>')
    for x1, y1, x2, y2, label in ARROWS:
        out.append(
            f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="#444" stroke-width="1.5"'
            ' marker-end="url(#a)"/>'
        )
        if label:
            out.append(
                f'<text x="{x1 + 5}" y="{(y1 + y2) // 2 + 4}" font-size="11" fill="#b00">{label}</text>'
            )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write(path: Path) -> None:
    """Write the picture to *path* if it changed (keeps Sphinx's incremental builds quiet)."""
    text = svg()
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent.parent / "_static" / "layers.svg")
