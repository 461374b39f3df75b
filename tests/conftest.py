"""The repository's tests use the fixtures that ship with the conformance suite."""

pytest_plugins = ["portaio.conformance.plugin"]
