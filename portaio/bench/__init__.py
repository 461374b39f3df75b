"""Benchmarks behind ``portaio bench``; each module has ``main(argv) -> int``.

Every benchmark prints ratios against the standard library measured in the
same run, so a noisy machine moves both sides alike.
"""
