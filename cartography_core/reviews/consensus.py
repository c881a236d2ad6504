"""From verdicts to decisions: each example's reviewed label, how far annotators agree, where they disagree.

A verdict is a *vote* for one category: the gold label's name (*correct*), the new label's name (*wrong*),
``AMBIGUOUS`` or ``REMOVE``; *skip* is no vote. Only each annotator's latest verdict counts
(:meth:`store.ReviewStore.latest`).

Per example with votes (:func:`resolve`):
- ``decision``: the category with the most votes; ``unresolved`` when two or more share the most (the label
  is then kept as it was);
- ``label_reviewed``: the decided label's name; the gold label's name when the decision is ``AMBIGUOUS``,
  ``REMOVE`` or unresolved;
- ``verdict``: ``correct`` (decided label = gold), ``relabeled``, ``ambiguous``, ``removed`` or
  ``unresolved``; examples nobody voted on are ``unreviewed``;
- ``agreement``: the share of annotator pairs that voted alike, sum_c n_c (n_c - 1) / (n (n - 1)) over the
  categories c with n_c of the example's n votes (1 when all agree; defined for n >= 2).

Overall agreement (:func:`agreement`) over the examples with two or more votes: Cohen's kappa
(``sklearn.metrics.cohen_kappa_score``) when exactly two annotators voted on them, else Krippendorff's
alpha for nominal data (``krippendorff.alpha``), which allows any number of annotators and missing votes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

AMBIGUOUS = "(ambiguous)"
REMOVE = "(remove)"
OUTCOMES = ("correct", "relabeled", "ambiguous", "removed", "unresolved", "unreviewed")


def votes(latest: pa.Table) -> pd.DataFrame:
    """Columns ``example_id``, ``annotator``, ``vote`` (a class name, ``AMBIGUOUS`` or ``REMOVE``), ``gold``:
    one row per latest verdict that is a vote (skips left out)."""
    df = latest.select(["example_id", "annotator", "verdict", "new_label", "gold"]).to_pandas()
    df = df[df["verdict"] != "skip"]
    vote = np.select(
        [df["verdict"] == "correct", df["verdict"] == "wrong", df["verdict"] == "ambiguous"],
        [df["gold"], df["new_label"], AMBIGUOUS],
        REMOVE,
    )
    return pd.DataFrame(
        {"example_id": df["example_id"], "annotator": df["annotator"], "vote": vote, "gold": df["gold"]}
    ).reset_index(drop=True)


def resolve(latest: pa.Table) -> pd.DataFrame:
    """One row per example with at least one vote: ``example_id``, ``n_votes``, ``decision``, ``unresolved``,
    ``label_reviewed``, ``verdict``, ``agreement`` (module docstring), and ``votes`` ("ann: vote; ...")."""
    v = votes(latest)
    cols = ["example_id", "n_votes", "decision", "unresolved", "label_reviewed", "verdict", "agreement", "votes"]
    if v.empty:
        return pd.DataFrame({c: [] for c in cols})
    counts = v.groupby(["example_id", "vote"], sort=True).size().rename("n").reset_index()
    per = counts.groupby("example_id")["n"]
    counts["top"] = per.transform("max")
    n_votes = per.sum()
    pairs = (counts["n"] * (counts["n"] - 1)).groupby(counts["example_id"]).sum()
    winners = counts[counts["n"] == counts["top"]]
    n_winners = winners.groupby("example_id").size()
    decision = winners.groupby("example_id")["vote"].first()
    gold = v.groupby("example_id")["gold"].first()
    out = pd.DataFrame({"n_votes": n_votes, "gold": gold, "n_winners": n_winners, "decision": decision})
    out["unresolved"] = out["n_winners"] > 1
    out.loc[out["unresolved"], "decision"] = None
    is_label = ~out["unresolved"] & ~out["decision"].isin([AMBIGUOUS, REMOVE])
    out["label_reviewed"] = np.where(is_label, out["decision"], out["gold"])
    out["verdict"] = np.select(
        [out["unresolved"], out["decision"] == AMBIGUOUS, out["decision"] == REMOVE, out["decision"] == out["gold"]],
        ["unresolved", "ambiguous", "removed", "correct"],
        "relabeled",
    )
    n = out["n_votes"].astype(float)
    out["agreement"] = np.where(n >= 2, pairs.reindex(out.index).to_numpy() / np.maximum(n * (n - 1), 1), np.nan)
    listed = v.sort_values(["example_id", "annotator"])
    out["votes"] = (listed["annotator"] + ": " + listed["vote"]).groupby(listed["example_id"]).agg("; ".join)
    return out.reset_index()[cols]


@dataclass(frozen=True)
class Agreement:
    """Chance-corrected agreement over the examples with two or more votes."""

    method: str  # "cohen_kappa", "krippendorff_alpha", or "none" (fewer than 2 examples with 2 votes)
    value: float  # NaN when it is undefined (e.g. every vote in one category)
    n_examples: int  # examples with two or more votes
    n_annotators: int  # annotators who voted on them


def agreement(latest: pa.Table) -> Agreement:
    """Cohen's kappa for two annotators, Krippendorff's alpha (nominal) for more (module docstring)."""
    v = votes(latest)
    multi = v.groupby("example_id")["annotator"].transform("size") >= 2
    v = v[multi]
    n_ex, annotators = v["example_id"].nunique(), sorted(v["annotator"].unique())
    if n_ex < 2:
        return Agreement("none", float("nan"), int(n_ex), len(annotators))
    codes = {c: i for i, c in enumerate(sorted(v["vote"].unique()))}
    grid = v.pivot(index="annotator", columns="example_id", values="vote")
    if len(annotators) == 2:
        from sklearn.metrics import cohen_kappa_score

        a, b = grid.iloc[0], grid.iloc[1]
        both = a.notna() & b.notna()  # with two annotators every multi-vote example has both
        with np.errstate(divide="ignore", invalid="ignore"):
            value = cohen_kappa_score(a[both].map(codes), b[both].map(codes))
        return Agreement("cohen_kappa", float(value), int(n_ex), 2)
    import krippendorff

    data = grid.apply(lambda col: col.map(codes)).to_numpy(dtype=float)
    try:
        value = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    except ValueError:  # a single category: no variation to compare against
        value = float("nan")
    return Agreement("krippendorff_alpha", float(value), int(n_ex), len(annotators))


def disagreements(resolved: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`resolve` with two or more votes that are not all alike, least agreement first."""
    d = resolved[(resolved["n_votes"] >= 2) & (resolved["agreement"] < 1)]
    return d.sort_values(["agreement", "example_id"], kind="stable").reset_index(drop=True)


def outcome_codes(ids: pd.Index, resolved: pd.DataFrame) -> np.ndarray:
    """(N,) int8: each of ``ids``' :data:`OUTCOMES` index (``unreviewed`` where :func:`resolve` has no row).
    The reviewed examples are looked up in ``ids`` (keep one index per run: its hash table is reused)."""
    codes = np.full(len(ids), OUTCOMES.index("unreviewed"), dtype=np.int8)
    if len(resolved):
        at = ids.get_indexer(pd.Index(resolved["example_id"]))
        per = pd.Categorical(resolved["verdict"], categories=OUTCOMES).codes.astype(np.int8)
        codes[at[at >= 0]] = per[at >= 0]
    return codes
