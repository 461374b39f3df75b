"""Runs the shipped conformance cases of :mod:`portaio.conformance.eintr_cases`."""

from portaio.conformance.eintr_cases import *  # noqa: F403
