"""Sphinx configuration of portaio's documentation.

The docs document the *installed* package: ``import portaio`` must find it
(``pip install '.[docs]'`` first, as CI and ``tox -e docs`` do), so the
capability table and the API reference show the compiled backends as users
get them.  Only ``docs/_ext`` (the docs' own Sphinx extension) is put on
``sys.path``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

import layers_svg  # noqa: E402

import portaio  # noqa: E402

layers_svg.write(HERE / "_static" / "layers.svg")  # the picture in design.rst, drawn by a script

project = "portaio"
author = "The portaio developers"
copyright = "2026, The portaio developers"
release = portaio.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.doctest",
    "portaio_docs",
]

exclude_patterns = ["_build", "_inventories"]
templates_path: list[str] = []
nitpicky = True
default_role = "py:obj"
primary_domain = "py"

html_theme = "furo"
html_title = f"portaio {release}"
html_static_path = ["_static"]
html_css_files = ["portaio.css"]

# CI has no route to docs.python.org: intersphinx reads the trimmed copy of
# Python's inventory kept in _inventories/ (see make_python_inv.py there).
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", ("_inventories/python.inv",)),
}

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_preserve_defaults = True

doctest_global_setup = """
import os
import socket
import portaio

# Examples that use EDGE need a backend that has it (epoll, kqueue); they are
# skipped (with :skipif:) on a machine that has none.
EDGE_BACKEND = next(
    (n for n in portaio.available_backends() if portaio.backend_class(n).capabilities.edge), None
)
"""

# Python documents these in a table, not as objects intersphinx can find.
nitpick_ignore = [("py:data", "selectors.EVENT_READ"), ("py:data", "selectors.EVENT_WRITE")]
# Docstrings already name the timer, signal and wake-up methods; until the
# Poller in this build has them, those references have nothing to point at.
nitpick_ignore += [
    (role, f"{prefix}Poller.{method}")
    for method in ("add_timer", "add_signal", "wake")
    if not hasattr(portaio.Poller, method)
    for role in ("py:meth", "py:func")
    for prefix in ("", "portaio.")
]
# The vendored, trimmed inventory of the standard library lacks abc.ABC, the
# base the backend contract's classes show.
nitpick_ignore += [("py:class", "abc.ABC")]
