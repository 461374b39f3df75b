"""The test command cannot lie: tests of the guards in ``tests/conftest.py``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import INSTALL_AND_TEST, emulated_userland, expected_backends, missing_backends_message

import portaio

README = Path(__file__).resolve().parents[1] / "README.md"


def test_fix_command_is_the_readme_test_line() -> None:
    if not README.exists():  # pragma: no cover - tests copied without the README
        pytest.skip("README.md is not next to the tests")
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- test-line -->\n```sh\n(.*)\n```", text)
    assert block is not None, "README.md has no test line"
    assert block.group(1) == INSTALL_AND_TEST


@pytest.mark.parametrize(
    ("platform", "expected"),
    [("linux", ("epoll",)), ("darwin", ("kqueue",)), ("freebsd14", ("kqueue",)), ("win32", ())],
)
def test_expected_backends(platform: str, expected: tuple[str, ...]) -> None:
    assert expected_backends(platform) == expected


def test_message_names_backend_reason_and_command() -> None:
    message = missing_backends_message({"epoll": "the compiled module is missing"}, "/src/portaio")
    assert "epoll: the compiled module is missing" in message
    assert "/src/portaio" in message
    assert INSTALL_AND_TEST in message


def _uncompiled_tree(tmp_path: Path) -> Path:
    """The installed portaio without its compiled modules, plus this conftest and one test."""
    source = Path(portaio.__file__).parent
    shutil.copytree(
        source, tmp_path / "portaio", ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__")
    )
    (tmp_path / "tests").mkdir()
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "tests" / "conftest.py")
    (tmp_path / "tests" / "test_one.py").write_text(
        "def test_backend(backend):\n    assert backend\n", encoding="utf-8"
    )
    return tmp_path


def _run_pytest(tree: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("PORTAIO_TEST_BACKENDS", "PYTHONPATH")}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-ra", "-p", "no:cacheprovider", "tests"],
        cwd=tree,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(not expected_backends(), reason="no compiled backend is expected on this platform")
def test_uncompiled_tree_fails_loudly(tmp_path: Path) -> None:
    result = _run_pytest(_uncompiled_tree(tmp_path))
    out = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, out
    assert f"{expected_backends()[0]}: the compiled module" in out
    assert INSTALL_AND_TEST in out
    assert "passed" not in out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kqueue is an expected backend off Linux")
def test_unavailable_backend_skips_fold_into_one_line(tmp_path: Path) -> None:
    # Named on purpose, the pure-Python backends run from the uncompiled tree;
    # kqueue, named but without its compiled module, is one skip line with its
    # reason, not one line per test.
    tree = _uncompiled_tree(tmp_path)
    (tree / "tests" / "test_two.py").write_text(
        "def test_again(backend):\n    assert backend\n", encoding="utf-8"
    )
    result = _run_pytest(tree, PORTAIO_TEST_BACKENDS="poll,select,kqueue")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "4 passed, 2 skipped" in out
    skip_lines = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    assert len(skip_lines) == 1, out
    assert re.match(r"SKIPPED \[2\] .*plugin\.py: kqueue backend unavailable here: ", skip_lines[0]), out


def test_emulated_userland_needs_a_machine_the_kernel_is_not(tmp_path: Path) -> None:
    arch = tmp_path / "arch"
    arch.write_text("x86_64\n", encoding="ascii")
    assert emulated_userland(str(arch), "x86_64") is None
    assert emulated_userland(str(arch), "i686") is None  # a 32-bit userland the kernel runs itself
    assert emulated_userland(str(arch), "aarch64") == "aarch64 userland on a x86_64 kernel"
    assert emulated_userland(str(tmp_path / "missing"), "aarch64") is None
