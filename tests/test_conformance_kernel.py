"""Runs the shipped conformance cases of :mod:`portaio.conformance.kernel_cases`."""

from portaio.conformance.kernel_cases import *  # noqa: F403
