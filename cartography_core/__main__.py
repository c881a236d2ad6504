"""``python -m cartography_core``: see ``cartography_core.cli``."""

import sys

from .cli import main

sys.exit(main())
