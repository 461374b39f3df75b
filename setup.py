"""Only here because cffi's ``cffi_modules`` needs setup(); metadata is in pyproject.toml."""

from __future__ import annotations

import os
import platform
import sys
import sysconfig

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


def wheel_options() -> dict[str, dict[str, str]]:
    """Tag CPython wheels abi3 (cp39): cffi builds its API-mode modules on the stable ABI.

    cffi defines Py_LIMITED_API and setuptools names the module ``*.abi3.so``,
    so one wheel serves every CPython from 3.9; the tag has to say so.  Not on
    PyPy (its own ABI) nor on free-threaded CPython (no limited API there).
    """
    if platform.python_implementation() == "CPython" and not sysconfig.get_config_var("Py_GIL_DISABLED"):
        return {"bdist_wheel": {"py_limited_api": "cp39"}}
    return {}


setup(cffi_modules=cffi_modules(), options=wheel_options())
