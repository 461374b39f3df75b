"""Only here because cffi's ``cffi_modules`` needs setup(); metadata is in pyproject.toml."""

from __future__ import annotations

import sys

from setuptools import setup


def cffi_modules() -> list[str]:
    """The cffi extension modules this machine can build."""
    modules = []
    if sys.platform.startswith("linux"):
        modules.append("build_ffi.py:epoll_ffi")
    return modules


setup(cffi_modules=cffi_modules())
