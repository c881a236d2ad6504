"""Write small hand-made training-dynamics logs in every layout the library reads (test helper)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

LAYOUTS = ("parquet", "jsonl", "parts", "allenai")


def epoch_rows(ids, labels, logits) -> list[dict]:
    return [
        {"id": i.item() if hasattr(i, "item") else i, "label": int(y), "logits": [float(v) for v in z]}
        for i, y, z in zip(ids, labels, np.asarray(logits, dtype=float))
    ]


def write_log(root: Path, epochs: list[list[dict]], layout: str = "parquet", meta: dict | None = None) -> Path:
    """``epochs[e]`` is a list of rows ``{"id", "label", "logits"}``; returns the run directory ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    if meta is not None:
        (root / "run.json").write_text(json.dumps(meta))
    if layout == "allenai":
        d = root / "training_dynamics"
        d.mkdir(exist_ok=True)
        for e, rows in enumerate(epochs):
            with open(d / f"dynamics_epoch_{e}.jsonl", "w") as fh:
                for r in rows:
                    fh.write(json.dumps({"guid": r["id"], f"logits_epoch_{e}": r["logits"], "gold": r["label"]}) + "\n")
        return root
    d = root / "dynamics"
    d.mkdir(exist_ok=True)
    for e, rows in enumerate(epochs):
        if layout == "jsonl":
            with open(d / f"epoch_{e}.jsonl", "w") as fh:
                fh.writelines(json.dumps(r) + "\n" for r in rows)
        elif layout == "parquet":
            pq.write_table(_table(rows), d / f"epoch_{e:03d}.parquet")
        elif layout == "parts":
            (d / f"epoch_{e}").mkdir(exist_ok=True)
            half = len(rows) // 2
            pq.write_table(_table(rows[:half]), d / f"epoch_{e}" / "part-0.parquet")
            pq.write_table(_table(rows[half:]), d / f"epoch_{e}" / "part-1.parquet")
        else:
            raise ValueError(layout)
    return root


def _table(rows: list[dict]) -> pa.Table:
    return pa.table(
        {
            "id": [r["id"] for r in rows],
            "label": pa.array([r["label"] for r in rows], type=pa.int64()),
            "logits": pa.array([r["logits"] for r in rows], type=pa.list_(pa.float32())),
        }
    )


def assert_same_table(got: pa.Table, want: pa.Table) -> None:
    """Identical columns; integers, booleans and strings equal, floats within 1e-9, nulls in the same rows."""
    assert got.column_names == want.column_names
    assert got.num_rows == want.num_rows
    for name in want.column_names:
        a, b = got[name], want[name]
        assert a.type == b.type, name
        assert a.null_count == b.null_count, name
        if pa.types.is_floating(b.type):
            np.testing.assert_allclose(
                a.to_numpy(zero_copy_only=False), b.to_numpy(zero_copy_only=False), rtol=0, atol=1e-9, err_msg=name
            )
        else:
            assert a.to_pylist() == b.to_pylist(), name
