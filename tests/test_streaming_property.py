"""The streaming, vectorised statistics equal a direct per-example computation on random logs (hypothesis).

The reference below folds nothing: it gathers each example's epochs into a Python list and applies the
formulas of ``docs/scores.md`` one example at a time, the way allenai/cartography does.
"""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cartography_core import compute_stats
from tests.logs import write_log


def direct(trajectory, gold, late):
    """All scores of one example from its list of logits vectors (the epochs it was logged in, in order);
    ``late[j]``: whether entry j is one of the run's last ceil(E/6) epochs (late_margin's)."""
    g, acc, aum, margin, el2n, ent, loss = [], [], [], [], [], [], []
    for z in trajectory:
        z = np.asarray(z, dtype=float)
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        others = [k for k in range(len(z)) if k != gold]
        g.append(p[gold])
        acc.append(int(np.argmax(z)) == gold)
        aum.append(z[gold] - max(z[k] for k in others))
        margin.append(p[gold] - max(p[k] for k in others))
        el2n.append(math.sqrt(sum((p[k] - (k == gold)) ** 2 for k in range(len(z)))))
        ent.append(-sum(q * math.log(q) for q in p if q > 0))
        loss.append(-math.log(p[gold]))
    conf = sum(g) / len(g)
    forgets = sum(1 for a, b in zip(acc, acc[1:]) if a and not b)
    first = next((e for e, a in enumerate(acc) if a), None)
    consistent = next((e for e in range(len(acc)) if all(acc[e:])), None) if acc[-1] else None
    return {
        "n_epochs": len(g),
        "confidence": conf,
        "variability": math.sqrt(sum((x - conf) ** 2 for x in g) / len(g)),
        "correctness": sum(acc) / len(acc),
        "correct_count": sum(acc),
        "forgetting_events": forgets,
        "never_learned": not any(acc),
        "first_learned_index": first,
        "consistent_index": consistent,
        "aum": sum(aum) / len(aum),
        "margin": sum(margin) / len(margin),
        "late_margin": np.mean([m for m, x in zip(margin, late) if x]) if any(late) else None,
        "el2n": sum(el2n) / len(el2n),
        "entropy": sum(ent) / len(ent),
        "loss": sum(loss) / len(loss),
        "data_iq_aleatoric": sum(x * (1 - x) for x in g) / len(g),
    }


@st.composite
def random_logs(draw):
    n = draw(st.integers(2, 12))
    k = draw(st.integers(2, 4))
    e = draw(st.integers(1, 14))  # late_margin's window: 1 epoch up to E = 6, 2 up to 12, then 3
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    scale = draw(st.sampled_from([0.1, 1.0, 10.0]))
    logits = np.round(rng.normal(size=(e, n, k)) * scale * 4) / 4  # quarter steps: exact ties happen
    present = rng.random((e, n)) < 0.8
    present[rng.integers(0, e, n), np.arange(n)] = True  # every example logged at least once
    return labels, logits, present, seed


@settings(max_examples=60, deadline=None)
@given(random_logs())
def test_streaming_equals_direct(tmp_path_factory, log):
    labels, logits, present, seed = log
    e, n, _ = logits.shape
    rng = np.random.default_rng(seed + 1)
    epochs = []
    for ep in range(e):
        rows = [
            {"id": int(i) * 7, "label": int(labels[i]), "logits": logits[ep, i].tolist()}
            for i in rng.permutation(n)
            if present[ep, i]
        ]
        epochs.append(rows)
    if any(not rows for rows in epochs):
        return  # an epoch with no rows at all is an error, tested elsewhere
    got = {r["id"]: r for r in compute_stats(write_log(tmp_path_factory.mktemp("h"), epochs, "jsonl")).to_pylist()}
    assert sorted(got) == [i * 7 for i in range(n)]
    for i in range(n):
        seen = np.flatnonzero(present[:, i])  # the epochs example i was logged in
        want = direct([logits[ep, i] for ep in seen], labels[i], seen >= e - math.ceil(e / 6))
        row = got[i * 7]
        want["first_learned_epoch"] = (
            None if want["first_learned_index"] is None else int(seen[want["first_learned_index"]])
        )
        want["consistently_learned_epoch"] = (
            None if want["consistent_index"] is None else int(seen[want["consistent_index"]])
        )
        for key, value in want.items():
            if key.endswith("_index"):
                continue
            if isinstance(value, float):
                assert math.isclose(row[key], value, rel_tol=1e-9, abs_tol=1e-12), (i, key, row[key], value)
            else:
                assert row[key] == value, (i, key)
