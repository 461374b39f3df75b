"""Runs the shipped conformance cases of :mod:`portaio.conformance.stale_cases`."""

from portaio.conformance.stale_cases import *  # noqa: F403
