#!/usr/bin/env python3
"""Echo ping-pong (K = 1, 100, 1000) and connections held: see portaio/bench/echo.py.

Examples: ``benchmarks/echo.py``; ``benchmarks/echo.py --held 19993 --held-only``;
``benchmarks/echo.py --held 150000 --held-only --workers 8 --processes 8``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from portaio.bench.echo import main

if __name__ == "__main__":
    sys.exit(main())
