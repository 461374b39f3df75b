"""Runner: ``python benchmarks/timers.py [--count N]`` == ``portaio bench timers``."""

import sys

from portaio.bench.timers import main

sys.exit(main())
