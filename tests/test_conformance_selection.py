"""Runs the shipped conformance cases of :mod:`portaio.conformance.selection_cases`."""

from portaio.conformance.selection_cases import *  # noqa: F403
