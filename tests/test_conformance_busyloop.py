"""Runs the shipped conformance cases of :mod:`portaio.conformance.busyloop_cases`."""

from portaio.conformance.busyloop_cases import *  # noqa: F403
