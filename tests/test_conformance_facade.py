"""Runs the shipped conformance cases of :mod:`portaio.conformance.facade_cases`."""

from portaio.conformance.facade_cases import *  # noqa: F403
