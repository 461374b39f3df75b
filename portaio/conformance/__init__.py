"""portaio's conformance suite: the contract every backend must show identically.

The cases live in the ``*_cases.py`` modules of this package so that they
ship with the wheel: ``portaio conformance`` runs them on the installed
package, and the repository's ``tests/`` imports them.  Fixtures come from
:mod:`portaio.conformance.plugin`.
"""
