"""Runs the shipped conformance cases of :mod:`portaio.conformance.fork_cases`."""

from portaio.conformance.fork_cases import *  # noqa: F403
