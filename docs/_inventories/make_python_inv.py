"""Write ``python.inv``: the part of Python's Sphinx inventory the docs link to.

The docs build offline (CI reaches no documentation site), so intersphinx reads
this trimmed copy of ``https://docs.python.org/3/objects.inv``.  Regenerate it
from any full inventory (Debian's ``python3-doc`` ships one) when a page links
to a module not listed in ``MODULES``::

    python3 docs/_inventories/make_python_inv.py /usr/share/doc/python3/html/objects.inv
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

MODULES = (
    "asyncio",
    "collections.abc",
    "dataclasses",
    "enum",
    "errno",
    "os",
    "select",
    "selectors",
    "signal",
    "resource",
    "socket",
    "struct",
    "subprocess",
    "tempfile",
    "threading",
    "time",
    "typing",
)
"""Modules whose objects are kept (with their submodules)."""

BUILTIN_ROLES = ("py:class", "py:exception", "py:function", "py:data")
"""Roles of the unqualified built-in names that are kept (``int``, ``KeyError``, ...)."""


def keep(line: str) -> bool:
    """True for an inventory line the docs may link to."""
    name, role = line.split(" ", 2)[:2]
    if role == "py:module":
        return name in MODULES or name.startswith(tuple(m + "." for m in MODULES))
    if role.startswith("py:"):
        if "." not in name:
            return role in BUILTIN_ROLES
        return name.startswith(tuple(m + "." for m in MODULES))
    return role == "std:term"


def main(argv: list[str]) -> int:
    """Trim the inventory at ``argv[0]`` into ``python.inv`` beside this script."""
    raw = Path(argv[0]).read_bytes()
    header = raw.split(b"\n", 4)
    body = zlib.decompress(header[4]).decode()
    kept = [line for line in body.splitlines() if line and keep(line)]
    out = Path(__file__).with_name("python.inv")
    out.write_bytes(b"\n".join(header[:4]) + b"\n" + zlib.compress(("\n".join(kept) + "\n").encode(), 9))
    print(f"{out}: {len(kept)} of {len(body.splitlines())} entries")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
