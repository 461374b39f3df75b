"""Runs the shipped conformance cases of :mod:`portaio.conformance.sources_cases`."""

from portaio.conformance.sources_cases import *  # noqa: F403
