"""Runs the shipped conformance cases of :mod:`portaio.conformance.exclusive_cases`."""

from portaio.conformance.exclusive_cases import *  # noqa: F403
