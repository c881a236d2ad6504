"""Dataset cartography from training dynamics: read logs, score every example, find regions, pick subsets.

Data flows one way: logs -> ``ingest`` -> ``stats`` -> ``regions`` / ``select`` / ``reliability`` -> CLI or app.
Symbols: N examples, E epochs, K classes, R runs.
"""

from .errors import LogError
from .examples import with_examples
from .ingest import DynamicsReader, Run, find_runs, open_run, read_examples
from .io import write_table
from .record import DynamicsRecorder
from .regions import REGIONS, RegionThresholds, region_codes, region_counts, region_names
from .reliability import compare_groups, pool_runs, spearman_brown, split_half_reliability
from .scores import SCORES
from .select import rank_order, select_fraction, select_random, select_region, subset_size
from .stats import COLUMNS, compute_stats, epoch_quantities, table_meta

__all__ = [
    "COLUMNS",
    "REGIONS",
    "SCORES",
    "DynamicsReader",
    "DynamicsRecorder",
    "LogError",
    "RegionThresholds",
    "Run",
    "compare_groups",
    "compute_stats",
    "epoch_quantities",
    "find_runs",
    "open_run",
    "pool_runs",
    "rank_order",
    "read_examples",
    "region_codes",
    "region_counts",
    "region_names",
    "select_fraction",
    "select_random",
    "select_region",
    "spearman_brown",
    "split_half_reliability",
    "subset_size",
    "table_meta",
    "with_examples",
    "write_table",
]
