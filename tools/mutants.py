"""Sample and score mutmut's mutants of the core and backends (issue 17).

A full ``tox -e mutants`` run is about 2,800 mutants and hours on a 2-core
machine; a stratified random sample (the same fraction of every module,
every mutant of a module with ten or fewer) gives the score in under an
hour, and the same seed gives the same sample on every machine that
generates the same mutants.  Both commands read the listing of ``mutmut
results --all true`` on standard input::

    mutmut results --all true | python tools/mutants.py sample 0.4 17 > sample.txt
    mutmut run $(cat sample.txt)
    mutmut results --all true | python tools/mutants.py score tools/mutants-verdicts.txt

``score`` prints a table per module: killed (timeouts and crashes count as
killed: the suite noticed), survived, and "no case" (no conformance case
reaches the function), minus the mutants that ``tools/mutants-verdicts.txt``
argues *equivalent* (no behaviour differs) or *unreachable* (code only
another platform runs); the score is killed over the rest.
"""

from __future__ import annotations

import collections
import random
import re
import sys

_NAME = re.compile(r"^\s*(?P<name>\S+?):\s+(?P<status>.+?)\s*$")
_KILLED = {"killed", "timeout", "segfault", "suspicious"}


def _module(name: str) -> str:
    """``portaio._poller.xǁPollerǁpoll__mutmut_3`` -> ``portaio._poller``."""
    match = re.match(r"(.*?)\.x(ǁ|_)", name)
    if match is None:
        raise ValueError(f"not a mutmut mutant name: {name!r}")
    return match.group(1)


def read_listing(lines: list[str]) -> dict[str, str]:
    """Mutant name -> status, from ``mutmut results --all true``."""
    out = {}
    for line in lines:
        match = _NAME.match(line)
        if match:
            out[match.group("name")] = match.group("status")
    return out


def sample(names: list[str], fraction: float, seed: int) -> list[str]:
    """The same *fraction* of every module's mutants (all of a module with ten or fewer)."""
    by_module: dict[str, list[str]] = collections.defaultdict(list)
    for name in names:
        by_module[_module(name)].append(name)
    rng = random.Random(seed)
    picked: list[str] = []
    for module in sorted(by_module):
        group = sorted(by_module[module])
        k = len(group) if len(group) <= 10 else max(10, round(len(group) * fraction))
        picked += sorted(rng.sample(group, k))
    return picked


def read_verdicts(path: str) -> dict[str, str]:
    """Mutant name -> ``equivalent`` or ``unreachable``, from ``NAME | verdict | why`` lines."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            name, verdict, _why = (part.strip() for part in line.split("|", 2))
            if verdict not in ("equivalent", "unreachable"):
                raise ValueError(
                    f"{path}: {name}: verdict must be equivalent or unreachable, not {verdict!r}"
                )
            out[name] = verdict
    return out


def score(statuses: dict[str, str], verdicts: dict[str, str]) -> int:
    """Print the per-module table and the total; returns 0."""
    rows: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for name, status in statuses.items():
        if status == "not checked":
            continue
        row = rows[_module(name)]
        if name in verdicts:
            row[verdicts[name]] += 1
        elif status in _KILLED:
            row["killed"] += 1
        elif status == "no tests":
            row["no case"] += 1
        else:
            row["survived"] += 1
    total: collections.Counter[str] = collections.Counter()
    cols = ("killed", "survived", "no case", "equivalent", "unreachable")
    print(f"{'module':34}" + "".join(f"{c:>12}" for c in cols) + f"{'score':>8}")
    for module in sorted(rows):
        total.update(rows[module])
        print(_line(module, rows[module], cols))
    print(_line("total", total, cols))
    return 0


def _line(label: str, row: collections.Counter[str], cols: tuple[str, ...]) -> str:
    counted = row["killed"] + row["survived"] + row["no case"]
    pct = f"{100 * row['killed'] / counted:.0f} %" if counted else "-"
    return f"{label:34}" + "".join(f"{row[c]:>12}" for c in cols) + f"{pct:>8}"


def main(argv: list[str]) -> int:
    listing = read_listing(sys.stdin.read().splitlines())
    if len(argv) == 3 and argv[0] == "sample":
        print("\n".join(sample(sorted(listing), float(argv[1]), int(argv[2]))))
        return 0
    if len(argv) == 2 and argv[0] == "score":
        return score(listing, read_verdicts(argv[1]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
