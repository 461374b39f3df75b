"""Runs the shipped conformance cases of :mod:`portaio.conformance.threads_cases`."""

from portaio.conformance.threads_cases import *  # noqa: F403
