"""``python -m neuroloop`` is the ``neuroloop`` command."""

import sys

from neuroloop.cli import main

sys.exit(main())
