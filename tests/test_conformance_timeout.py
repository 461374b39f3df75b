"""Runs the shipped conformance cases of :mod:`portaio.conformance.timeout_cases`."""

from portaio.conformance.timeout_cases import *  # noqa: F403
