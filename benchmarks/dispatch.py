"""Runner: ``python benchmarks/dispatch.py`` == ``portaio bench dispatch``."""

import sys

from portaio.bench.dispatch import main

sys.exit(main())
