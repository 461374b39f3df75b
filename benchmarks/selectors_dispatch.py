#!/usr/bin/env python3
"""PortaioSelector.select() vs selectors.EpollSelector: see portaio/bench/selectors_dispatch.py."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from portaio.bench.selectors_dispatch import main

if __name__ == "__main__":
    sys.exit(main())
