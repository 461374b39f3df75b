"""Runs the shipped conformance cases of :mod:`portaio.conformance.hangup_cases`."""

from portaio.conformance.hangup_cases import *  # noqa: F403
