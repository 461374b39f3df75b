"""Runs the shipped conformance cases of :mod:`portaio.conformance.signal_watch_cases`."""

from portaio.conformance.signal_watch_cases import *  # noqa: F403
