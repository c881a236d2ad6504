"""``python -m cartography_core``: see ``cartography_core.cli``."""

from .cli import run

if __name__ == "__main__":  # not when a worker process (Dask's LocalCluster) imports this module again
    run()
