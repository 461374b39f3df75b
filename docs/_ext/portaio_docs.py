"""Sphinx extension of portaio's docs: tables generated from the code.

``.. portaio-capabilities::`` renders every backend in
:data:`portaio.BACKEND_NAMES` with its :class:`portaio.Capabilities`, read
from ``portaio.backend_class(name).capabilities`` at build time, and lists
the backends that cannot run on the build machine with the reason
:func:`portaio.unavailable_reasons` gives.

The extension also resolves references to private module paths of public
names (``portaio._types.Event`` in a signature is ``portaio.Event``) and
warns when a name of ``portaio.__all__`` is missing from the API reference.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import re
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

import portaio
from portaio.backends import _kevent
from portaio.cli import format_seconds

logger = logging.getLogger(__name__)

LABELS = {
    "edge": "EDGE (edge-triggered)",
    "oneshot": "ONESHOT",
    "exclusive": "EXCLUSIVE (wake one)",
    "priority": "PRIORITY (out-of-band)",
    "rdhup": "RDHUP (peer shut down writing)",
    "hangup": "HANGUP / ERROR reported",
    "o1_wait": "wait cost",
    "timeout_resolution": "timeout resolution",
    "max_fd": "largest fd",
    "native_timers": "timers",
    "native_signals": "signals",
    "native_wake": "wake-ups",
}
"""Row titles for the fields of :class:`portaio.Capabilities` (others show their field name)."""


def _cell(field: str, value: Any) -> str:
    if field == "o1_wait":
        return "O(ready)" if value else "O(registered)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "no limit"
    if field == "timeout_resolution":
        return format_seconds(float(value))
    return str(value)


def capability_rows() -> tuple[list[str], list[list[str]], dict[str, str]]:
    """(header, rows, unavailable reasons) of the capability table, from the code."""
    reasons = portaio.unavailable_reasons()
    names = [name for name in portaio.BACKEND_NAMES if name not in reasons]
    caps = {name: portaio.backend_class(name).capabilities for name in names}
    header = ["", *names]
    rows = []
    for field in dataclasses.fields(portaio.Capabilities):
        label = LABELS.get(field.name, field.name)
        rows.append([label, *(_cell(field.name, getattr(caps[n], field.name)) for n in names)])
    return header, rows, {name: reasons[name] for name in portaio.BACKEND_NAMES if name in reasons}


KQUEUE_FAMILIES = {
    "macos": "macOS",
    "freebsd": "FreeBSD",
    "openbsd": "OpenBSD",
    "netbsd": "NetBSD",
    "libkqueue": "Linux (libkqueue)",
}
"""Column titles of the per-OS kqueue table, in the order of :data:`portaio.backends._kevent.KERNELS`."""


def kqueue_rows() -> tuple[list[str], list[list[str]]]:
    """(header, rows) of kqueue's capabilities on each OS family, whatever the build machine."""
    kernels = list(_kevent.KERNELS.values())
    caps = [_kevent.capabilities(kernel) for kernel in kernels]
    header = ["", *(KQUEUE_FAMILIES.get(kernel.name, kernel.name) for kernel in kernels)]
    rows = []
    for field in dataclasses.fields(portaio.Capabilities):
        label = LABELS.get(field.name, field.name)
        rows.append([label, *(_cell(field.name, getattr(c, field.name)) for c in caps)])
    return header, rows


def _list_table(title: str, header: list[str], rows: list[list[str]]) -> list[str]:
    lines = [f".. list-table:: {title}", "   :header-rows: 1", "   :stub-columns: 1", ""]
    for row in [header, *rows]:
        first, *rest = row
        lines.append(f"   * - {_escape(first)}")
        lines.extend(f"     - {_escape(cell)}" for cell in rest)
    lines.append("")
    return lines


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("`", "\\`").replace("|", "\\|")


class CapabilitiesDirective(SphinxDirective):
    """``.. portaio-capabilities::``: the backend capability table of this build."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        header, rows, unavailable = capability_rows()
        machine = f"{platform.system()} {platform.release()} ({platform.machine()})"
        lines = _list_table(
            f"Backends available on the machine that built these docs ({_escape(machine)}), best first",
            header,
            rows,
        )
        if unavailable:
            lines.append("Not available on that machine:")
            lines.append("")
            for name, reason in unavailable.items():
                lines.append(f"* **{name}**: {_escape(reason)}")
            lines.append("")
        lines.append(
            f"Default backend there: ``{portaio.default_backend()}``"
            f" (``PORTAIO_BACKEND`` {'set' if os.environ.get('PORTAIO_BACKEND') else 'unset'})."
        )
        lines.append("")
        lines.extend(
            _list_table(
                "kqueue on each OS family, whatever machine built these docs (from portaio.backends._kevent)",
                *kqueue_rows(),
            )
        )
        container = nodes.container(classes=["portaio-capabilities"])
        self.state.nested_parse(
            StringList(lines, source="<portaio-capabilities>"), self.content_offset, container
        )
        return [container]


class OptionalFigureDirective(SphinxDirective):
    """``.. portaio-figure:: _static/scaling.png``: a figure if the file exists, else how to make it.

    The content is the caption; the ``:command:`` option is what generates
    the image, shown in place of the figure until someone runs it.
    """

    required_arguments = 1
    has_content = True
    option_spec = {"command": lambda text: text.strip(), "alt": lambda text: text.strip()}

    def run(self) -> list[nodes.Node]:
        path = self.arguments[0]
        _, absolute = self.env.relfn2path(path, self.env.docname)
        command = self.options.get("command", "")
        if os.path.exists(absolute):
            alt = self.options.get("alt", path)
            lines = [f".. figure:: {path}", f"   :alt: {alt}", "   :width: 100%", ""]
            lines += [f"   {line}" for line in self.content]
        else:
            lines = [
                ".. note::",
                "",
                f"   The figure ``{path}`` has not been generated for this build yet."
                + (" Make it with:" if command else ""),
                "",
            ]
            if command:
                lines += ["   .. code-block:: sh", "", f"      {command}", ""]
        container = nodes.container(classes=["portaio-figure"])
        self.state.nested_parse(StringList(lines, source=self.env.docname), self.content_offset, container)
        return [container]


_CLAIMED = re.compile(r"^\.\. portaio-remaining-api::[ \t]+(.+)$", re.MULTILINE)
_DOCUMENTED = re.compile(
    r"^\s*\.\. (?:auto)?(?:class|exception|function|data|attribute)::\s+(\w+)", re.MULTILINE
)


class RemainingApiDirective(SphinxDirective):
    """``.. portaio-remaining-api:: [NAME ...]``: autodoc names of ``portaio.__all__`` not placed yet.

    Without arguments, every public name the page does not document elsewhere
    appears under the ``:title:`` ("Other names" by default), so a name added
    to ``portaio.__all__`` is in the reference at once.  With names, only
    those of them that this build has (and the page does not place
    elsewhere) are documented, under the title; nothing at all if none is
    there.
    """

    optional_arguments = 100
    has_content = False
    option_spec = {"title": lambda text: text.strip()}

    def run(self) -> list[nodes.Node]:
        source = Path(self.env.doc2path(self.env.docname)).read_text(encoding="utf-8")
        listed = set(_DOCUMENTED.findall(source))
        if self.arguments:
            wanted = [name for name in self.arguments if name in portaio.__all__]
        else:
            claimed = {name for names in _CLAIMED.findall(source) for name in names.split()}
            wanted = [name for name in portaio.__all__ if name not in claimed]
        lines: list[str] = []
        for name in wanted:
            if name.startswith("__") or name in listed:
                continue
            obj = getattr(portaio, name)
            if isinstance(obj, type) and issubclass(obj, BaseException):
                kind = "autoexception"
            elif isinstance(obj, type):
                kind = "autoclass"
            elif callable(obj):
                kind = "autofunction"
            else:
                kind = "autodata"
            lines += [f".. {kind}:: {name}", ""]
        if not lines:
            return []
        title = self.options.get("title", "Other names")
        lines = [title, "-" * len(title), "", *lines]
        container = nodes.section()
        nested_parse_with_titles(self.state, StringList(lines, source=self.env.docname), container)
        return list(container.children)


def resolve_private_paths(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement
) -> nodes.Element | None:
    """Resolve ``portaio._module.Name`` to the documented ``portaio.Name``."""
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target.startswith("portaio._"):
        return None
    parts = target.split(".")
    for cut in range(2, len(parts)):
        name = parts[cut]
        if name in portaio.__all__:
            public = ".".join(["portaio", *parts[cut:]])
            domain = env.get_domain("py")
            node["reftarget"] = public
            result: nodes.Element | None = domain.resolve_xref(
                env, node["refdoc"], app.builder, node["reftype"], public, node, contnode
            )
            if result is None:
                result = domain.resolve_xref(env, node["refdoc"], app.builder, "obj", public, node, contnode)
            return result
    return None


def check_api_complete(app: Sphinx, env: BuildEnvironment) -> None:
    """Warn for every public name of ``portaio.__all__`` the API reference does not document."""
    documented = env.get_domain("py").objects  # type: ignore[attr-defined]
    for name in portaio.__all__:
        if name.startswith("__"):
            continue
        if f"portaio.{name}" not in documented:
            logger.warning("portaio.%s is in portaio.__all__ but not documented (add it to api.rst)", name)


def _is_private(cls: type) -> bool:
    # A private name, or a class of a private module that portaio does not
    # export (the parts Poller is assembled from, like TimersSignalsWake).
    if cls.__name__.startswith("_"):
        return True
    return cls.__module__.startswith("portaio._") and getattr(portaio, cls.__name__, None) is not cls


def public_bases(app: Sphinx, name: str, obj: Any, options: Any, bases: list[type]) -> None:
    """Show a private base class (``_KeyLikeError``) as the public classes it derives from."""
    expanded: list[type] = []
    for base in bases:
        stack = [base]
        while stack:
            cls = stack.pop(0)
            if _is_private(cls):
                stack[:0] = list(cls.__bases__)
            elif cls not in expanded:
                expanded.append(cls)
    bases[:] = expanded


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive and the event handlers."""
    app.add_directive("portaio-capabilities", CapabilitiesDirective)
    app.add_directive("portaio-figure", OptionalFigureDirective)
    app.add_directive("portaio-remaining-api", RemainingApiDirective)
    app.connect("missing-reference", resolve_private_paths)
    app.connect("env-check-consistency", check_api_complete)
    app.connect("autodoc-process-bases", public_bases)
    return {"version": portaio.__version__, "parallel_read_safe": True, "parallel_write_safe": True}
