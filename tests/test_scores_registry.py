"""One registry of scores: the docs are generated from it, and the statistics table holds exactly its columns."""

from pathlib import Path

from cartography_core import COLUMNS, SCORES, compute_stats
from cartography_core.scores import OTHER_COLUMNS, markdown_table
from tests.logs import write_log

DOCS = Path(__file__).resolve().parent.parent / "docs" / "scores.md"


def test_docs_table_is_the_registry():
    assert markdown_table() in DOCS.read_text(), "regenerate docs/scores.md's table from scores.markdown_table()"


def test_the_statistics_table_has_every_registered_column_and_no_other(tmp_path):
    rows = [{"id": 1, "label": 0, "logits": [2.0, 0.0]}, {"id": 2, "label": 1, "logits": [2.0, 0.0]}]
    stats = compute_stats(write_log(tmp_path / "run", [rows, rows]))
    registered = {"id", "label", *SCORES, *OTHER_COLUMNS}
    assert set(stats.column_names) == registered == set(COLUMNS)
    assert all(s.harder in ("lower", "higher") for s in SCORES.values())
