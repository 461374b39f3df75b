"""The repository's tests use the fixtures that ship with the conformance suite."""

import pytest

# The cases live in portaio.conformance and are imported by the shims here:
# have pytest rewrite their asserts so that failures show the compared values.
pytest.register_assert_rewrite("portaio.conformance")

pytest_plugins = ["portaio.conformance.plugin"]
