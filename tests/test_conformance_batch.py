"""Runs the shipped conformance cases of :mod:`portaio.conformance.batch_cases`."""

from portaio.conformance.batch_cases import *  # noqa: F403
