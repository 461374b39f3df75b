"""Runs the shipped conformance cases of :mod:`portaio.conformance.lifecycle_cases`."""

from portaio.conformance.lifecycle_cases import *  # noqa: F403
