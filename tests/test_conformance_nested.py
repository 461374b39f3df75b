"""Runs the shipped conformance cases of :mod:`portaio.conformance.nested_cases`."""

from portaio.conformance.nested_cases import *  # noqa: F403
