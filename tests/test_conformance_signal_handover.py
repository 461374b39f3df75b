"""Runs the shipped conformance cases of :mod:`portaio.conformance.signal_handover_cases`."""

from portaio.conformance.signal_handover_cases import *  # noqa: F403
