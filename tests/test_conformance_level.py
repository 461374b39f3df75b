"""Runs the shipped conformance cases of :mod:`portaio.conformance.level_cases`."""

from portaio.conformance.level_cases import *  # noqa: F403
