"""``python -m portaio``: the same as the ``portaio`` command."""

import sys

from portaio.cli import main

sys.exit(main())
