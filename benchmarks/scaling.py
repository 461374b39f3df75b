"""Runner: ``python benchmarks/scaling.py [--plot FILE.png]`` == ``portaio bench scaling``."""

import sys

from portaio.bench.scaling import main

sys.exit(main())
