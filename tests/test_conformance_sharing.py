"""Runs the shipped conformance cases of :mod:`portaio.conformance.sharing_cases`."""

from portaio.conformance.sharing_cases import *  # noqa: F403
