"""Runs the shipped conformance cases of :mod:`portaio.conformance.files_cases`."""

from portaio.conformance.files_cases import *  # noqa: F403
