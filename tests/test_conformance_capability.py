"""Runs the shipped conformance cases of :mod:`portaio.conformance.capability_cases`."""

from portaio.conformance.capability_cases import *  # noqa: F403
