"""Runs the shipped conformance cases of :mod:`portaio.conformance.masked_cases`."""

from portaio.conformance.masked_cases import *  # noqa: F403
