"""Only here because cffi's ``cffi_modules`` needs setup(); metadata is in pyproject.toml."""

from __future__ import annotations

import os
import sys

from setuptools import setup

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from build_ffi import kqueue_build_flags


def cffi_modules() -> list[str]:
    """The cffi extension modules this machine can build."""
    modules = []
    if sys.platform.startswith("linux"):
        modules.append("build_ffi.py:epoll_ffi")
    if sys.platform == "win32":
        modules.append("build_ffi.py:afd_ffi")
    flags, why = kqueue_build_flags()
    if flags is not None:
        modules.append("build_ffi.py:kqueue_ffi")
    print(f"portaio: kqueue backend {'built with' if flags is not None else 'not built:'} {why}")
    return modules


setup(cffi_modules=cffi_modules())
