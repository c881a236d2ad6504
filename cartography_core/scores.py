"""The one definition of every per-example column: formula, direction, range and source.

``compute_stats`` builds these columns, ``select`` ranks by ``harder``, ``pool_runs`` averages every entry of
``SCORES``, the dashboard offers them for sorting, and ``docs/scores.md``'s table is generated from
:func:`markdown_table` (a test checks it). Notation: example i with gold label y over the E_i epochs it was
logged in; z_e its logits (K values) at epoch e; ``p_e = softmax(z_e)`` computed stably; ``g_e = p_e[y]``;
``acc_e = [argmax z_e == y]`` with argmax ties broken towards the lowest class index (numpy's rule).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Score:
    """One column: what it means and which way is harder (``None``: not a ranking score)."""

    name: str
    definition: str
    harder: str | None  # "lower" or "higher": the direction of a harder / more ambiguous / likelier mislabeled example
    range: str
    source: str = "-"


_ALL = [
    Score("confidence", "mean_e g_e", "lower", "[0, 1]", "Swayamdipta et al. 2020"),
    Score(
        "variability",
        "sqrt(mean_e (g_e - confidence)^2), the **population** std (ddof=0)",
        "higher",
        "[0, 0.5]",
        "Swayamdipta et al. 2020",
    ),
    Score("correctness", "mean_e acc_e, a **fraction**", "lower", "[0, 1]", "Swayamdipta et al. 2020"),
    Score("correct_count", 'sum_e acc_e (allenai\'s "correctness")', "lower", "0..E_i", "Swayamdipta et al. 2020"),
    Score("threshold_closeness", "confidence * (1 - confidence)", "higher", "[0, 0.25]", "Chang et al. 2017"),
    Score(
        "forgetting_events",
        "number of epochs e with acc = 1 at the previous logged epoch and acc_e = 0",
        "higher",
        "0..floor(E_i/2)",
        "Toneva et al. 2019",
    ),
    Score(
        "first_learned_epoch",
        "smallest e with acc_e = 1; null if never (E when pooled over runs)",
        "higher",
        "0..E-1",
        "Baldock et al. 2021",
    ),
    Score(
        "consistently_learned_epoch",
        "smallest e with acc_e' = 1 for every logged e' >= e; null if wrong at its last epoch (E when pooled)",
        "higher",
        "0..E-1",
        "Baldock et al. 2021; Siddiqui et al. 2022",
    ),
    Score(
        "aum",
        "mean_e (z_e[y] - max_{k != y} z_e[k]), on **logits**; null for a log of probabilities",
        "lower",
        "real",
        "Pleiss et al. 2020",
    ),
    Score(
        "margin",
        'mean_e (p_e[y] - max_{k != y} p_e[k]), on probabilities (what several codebases call "AUM")',
        "lower",
        "[-1, 1]",
    ),
    Score(
        "late_margin",
        "margin's mean over the run's last ceil(E/6) epochs only (E the run's epoch count: the last 5 of 30); "
        "null for an example logged in none of them",
        "lower",
        "[-1, 1]",
    ),
    Score("el2n", "mean_e \\|\\|p_e - onehot(y)\\|\\|_2", "higher", "[0, sqrt 2]", "Paul et al. 2021"),
    Score("entropy", "mean_e -sum_k p_e[k] log p_e[k] (natural log)", "higher", "[0, log K]"),
    Score("loss", "mean_e -log g_e (cross-entropy, natural log)", "higher", "[0, inf)"),
    Score("data_iq_aleatoric", "mean_e g_e (1 - g_e)", "higher", "[0, 0.25]", "Seedat et al. 2022"),
]

VARIABILITY_MAX = 0.5  # variability is the std of values in [0, 1]: at most 1/2 (half at 0, half at 1)
CONFIDENCE_MAX = 1.0

SCORES: dict[str, Score] = {s.name: s for s in _ALL}
"""The ranking scores, by name: every one is a column of ``compute_stats`` and is pooled over runs."""

OTHER_COLUMNS: dict[str, Score] = {
    s.name: s
    for s in [
        Score("never_learned", "acc_e = 0 at every logged epoch (allenai writes forgetfulness = 1000)", None, "bool"),
        Score("pred_label", "argmax z_e at the last epoch the example was logged", None, "0..K-1"),
        Score(
            "label_issue",
            "late_margin < 0 for a run judged late (run.json's label_issue_rule: the `label-errors` preset's runs), "
            "else aum < 0 (margin < 0 for a log of probabilities): the model preferred another class "
            "(`label_issues.py` says why)",
            None,
            "bool",
            "Pleiss et al. 2020",
        ),
        Score("n_epochs", "E_i, the number of epochs the example was logged in", None, "1..E"),
    ]
}


def markdown_table() -> str:
    """The table of ``docs/scores.md``: one row per column of the statistics table."""
    lines = ["| column | definition | harder when | range | source |", "| --- | --- | --- | --- | --- |"]
    for s in [*SCORES.values(), *OTHER_COLUMNS.values()]:
        lines.append(f"| `{s.name}` | {s.definition} | {s.harder or '-'} | {s.range} | {s.source} |")
    return "\n".join(lines) + "\n"
