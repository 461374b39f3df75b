"""Runs the shipped conformance cases of :mod:`portaio.conformance.errors_cases`."""

from portaio.conformance.errors_cases import *  # noqa: F403
