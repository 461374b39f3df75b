"""Runs the shipped conformance cases of :mod:`portaio.conformance.poll_loop_cases`."""

from portaio.conformance.poll_loop_cases import *  # noqa: F403
