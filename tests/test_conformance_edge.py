"""Runs the shipped conformance cases of :mod:`portaio.conformance.edge_cases`."""

from portaio.conformance.edge_cases import *  # noqa: F403
