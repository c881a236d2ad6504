"""Which labels are likely wrong, and how many: the ``label_issue`` flag and its counts per class.

An example is a likely label issue when the model preferred another class to its gold label. Which epochs
decide depends on how the model was trained::

    label_issue = late_margin < 0   a run trained like the label-errors preset (run.json's "label_issue_rule"):
                                    mean_e (p_e[y] - max_{k != y} p_e[k]) over the run's last ceil(E / 6) epochs
                = aum < 0           any other log (mean over every epoch of z_e[y] - max_{k != y} z_e[k];
                                    Pleiss et al. 2020)
                = margin < 0        a log of probabilities, which has no aum

(an example that the late epochs did not log falls back to the aum rule). "Trained like label-errors" is
``train.config.label_issue_rule``: the same penalized linear model, schedule and no early stopping, whatever
the epochs, rate or features. Zero is the margin's natural
threshold: the point where the gold class stops winning, the same for every dataset and class, with nothing
fitted to the log (Pleiss et al. plant "threshold samples" to move it: on these models they over-count 3 to 8
times, bench/results/detection.md). ``label-errors`` trains a penalized model that cannot memorize a wrong
label to convergence, so the model it settles at is the judge: averaged over all its epochs, the early ones,
before it had learned the hard but correct examples, flag those too (+30% to +43% over the true count),
while its last epochs count within 20% (bench/results/detection.md, 2026-11-24). A model that memorizes
(the ``map`` preset, most users' own loops) fits the wrong labels by its last epochs, so there the mean over
all epochs is the better judge. ``selftest`` measures how precise and complete the flag is on the user's own
data. The estimated number of label errors of a run or class is the number flagged. Both are read from the
statistics table, so they exist for any log: a user's own training loop, allenai's format, or pooled runs
(from the pooled scores).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .errors import LogError

FLAG = "label_issue"
LATE, AUM = "late_margin", "aum"  # run.json's "label_issue_rule": which rule flags the run
RULES = (LATE, AUM)
TRAINING_LENGTH_NOTE = (  # measured in bench/results/detection.md (2026-11-24 08:16 and 10:23)
    "the count depends on how long the model trained: with too few epochs hard examples are flagged too, and far "
    "past the best held-out epoch the model memorizes wrong labels and fewer are flagged; the built-in trainer's "
    "--preset label-errors holds it steady (README, Finding label errors)"
)
PENALIZED_NOTE = (  # bench/results/detection.md, 2026-11-24 14:00 (noise seeds 103-105)
    "this run was trained like --preset label-errors (penalized, to convergence), so it counts the examples its "
    "model still put in another class over the last sixth of training (late_margin < 0); with 10% of labels "
    "flipped that count came within -15% to +7% of the flips in bench/results/detection.md, and it includes "
    "correct examples the model gets wrong (README, Finding label errors)"
)


FLAT_MAP_NOTE = (
    "This run was trained with --preset label-errors: its penalized model settles within a few epochs, so few "
    "examples vary enough to be ambiguous; it is made for the likely-mislabeled subset (train with the map preset "
    "for a data map)."
)


def map_note(meta: dict) -> str:
    """A sentence for the data map of a statistics table with metadata ``meta``, or ""."""
    return FLAT_MAP_NOTE if meta.get("preset") == "label-errors" else ""


def count_note(meta: dict) -> str:
    """What the flagged count means for a statistics table with metadata ``meta`` (``stats.table_meta``)."""
    return PENALIZED_NOTE if uses_late_rule(meta) else TRAINING_LENGTH_NOTE


def label_issue_mask(aum: np.ndarray, margin: np.ndarray, late_margin: np.ndarray | None = None) -> np.ndarray:
    """(N,) bool: ``late_margin < 0`` where it is given and defined (not NaN); else ``aum < 0`` where the aum is
    defined, else ``margin < 0``."""
    flag = np.where(np.isnan(aum), margin < 0, aum < 0)
    return flag if late_margin is None else np.where(np.isnan(late_margin), flag, late_margin < 0)


def uses_late_rule(meta: dict) -> bool:
    """Whether a statistics table with metadata ``meta`` flags by ``late_margin``: its run.json says
    ``"label_issue_rule": "late_margin"``, as the built-in trainer writes for a model penalized and trained to
    convergence like the label-errors preset (``train.config.label_issue_rule``); a recorder's ``meta`` can say
    it of a user's own such loop."""
    return meta.get("label_issue_rule") == LATE


def pooled_rule(metas: list[dict]) -> str:
    """The rule that flags runs pooled together (statistics-table metadata ``metas``): late_margin only when every
    run is judged late, else aum."""
    return LATE if all(uses_late_rule(m) for m in metas) else AUM


def check_rule(value, where: str) -> None:
    """Raise :class:`LogError` naming ``where`` unless ``value`` (a "label_issue_rule") is None or one of RULES:
    a misspelt rule would otherwise fall back to aum without a word."""
    if value is not None and value not in RULES:
        raise LogError(f"{where}: label_issue_rule must be one of {', '.join(map(repr, RULES))}, found {value!r}")


def flag_formula(meta: dict) -> str:
    """The ``label_issue`` rule of a statistics table with metadata ``meta``, as a formula."""
    return "late_margin < 0" if uses_late_rule(meta) else "aum < 0, or margin < 0 for a log of probabilities"


def flag_rule(meta: dict) -> str:
    """The ``label_issue`` rule of a statistics table with metadata ``meta``, in words."""
    over = "the last sixth of training" if uses_late_rule(meta) else "training"
    return f"{flag_formula(meta)}: the gold class lost on average over {over}"


def issue_counts(table: pa.Table, names: list[str]) -> pa.Table:
    """Per class: ``class``, ``examples``, ``label_issues`` (the estimated number of wrong labels) and
    ``share`` (label_issues / examples), then a ``total`` row."""
    labels = table["label"].to_numpy()
    flags = table[FLAG].to_numpy(zero_copy_only=False)
    k = len(names)
    return class_counts(names, np.bincount(labels, minlength=k), np.bincount(labels[flags], minlength=k))


def class_counts(names: list[str], examples: np.ndarray, flagged: np.ndarray) -> pa.Table:
    """The table of :func:`issue_counts` from per-class counts of ``examples`` and of ``flagged`` ones."""
    n, bad = np.append(examples, examples.sum()), np.append(flagged, flagged.sum())
    share = bad / np.maximum(n, 1)  # 0 for a class without examples (it has no flags either)
    return pa.table({"class": [*names, "total"], "examples": n, "label_issues": bad, "share": share})


UNLEARNED_SHARE = 0.5  # more than half of a class flagged: the model failed the class, its labels are not all wrong


def unlearned_classes(counts: pa.Table) -> str:
    """A warning naming the classes (rows of :func:`issue_counts`) with more than half their examples flagged,
    or "" when there are none. The flag assumes that most labels are right, so a class flagged in the main is
    one the model did not learn (too few examples or epochs), and its count is no estimate of wrong labels."""
    rows = [r for r in counts.to_pylist()[:-1] if r["examples"] and r["share"] > UNLEARNED_SHARE]
    if not rows:
        return ""
    named = ", ".join(f"{r['class']} ({r['label_issues']} of {r['examples']})" for r in rows)
    return (
        f"more than half of class{'es' * (len(rows) > 1)} {named} flagged: the model did not learn "
        f"{'them' if len(rows) > 1 else 'it'}, so these flags do not count wrong labels (train longer, add examples "
        "of the class, or pool several runs)"
    )
