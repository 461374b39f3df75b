"""Runs the shipped conformance cases of :mod:`portaio.conformance.timer_queue_cases`."""

from portaio.conformance.timer_queue_cases import *  # noqa: F403
