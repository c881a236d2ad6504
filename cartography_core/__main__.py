"""``python -m cartography_core``: see ``cartography_core.cli``."""

from .cli import run

run()
