"""Runs the shipped conformance cases of :mod:`portaio.conformance.oneshot_cases`."""

from portaio.conformance.oneshot_cases import *  # noqa: F403
