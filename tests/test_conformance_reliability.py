"""Runs the shipped conformance cases of :mod:`portaio.conformance.reliability_cases`."""

from portaio.conformance.reliability_cases import *  # noqa: F403
