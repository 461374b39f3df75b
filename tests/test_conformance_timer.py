"""Runs the shipped conformance cases of :mod:`portaio.conformance.timer_cases`."""

from portaio.conformance.timer_cases import *  # noqa: F403
