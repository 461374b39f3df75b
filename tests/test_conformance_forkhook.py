"""Runs the shipped conformance cases of :mod:`portaio.conformance.forkhook_cases`."""

from portaio.conformance.forkhook_cases import *  # noqa: F403
