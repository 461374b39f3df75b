"""Runs the shipped conformance cases of :mod:`portaio.conformance.wake_cases`."""

from portaio.conformance.wake_cases import *  # noqa: F403
