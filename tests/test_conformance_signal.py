"""Runs the shipped conformance cases of :mod:`portaio.conformance.signal_cases`."""

from portaio.conformance.signal_cases import *  # noqa: F403
