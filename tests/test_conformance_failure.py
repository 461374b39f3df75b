"""Runs the shipped conformance cases of :mod:`portaio.conformance.failure_cases`."""

from portaio.conformance.failure_cases import *  # noqa: F403
