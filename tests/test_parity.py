"""Parity with allenai/cartography's own outputs on the fixture its code produced (see the fixture's README)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cartography_core import compute_stats

FIXTURE = Path(__file__).parent / "fixtures" / "allenai_reference_small"


@pytest.mark.parametrize("csv, max_epochs", [("allenai_metrics.csv", None), ("allenai_metrics_burn_out_4.csv", 4)])
def test_matches_allenai_reference(csv, max_epochs):
    ours = compute_stats(FIXTURE, max_epochs=max_epochs, variability_ci=True).to_pandas()
    ref = pd.read_csv(FIXTURE / csv)
    assert len(ours) == len(ref) == 400
    m = ours.merge(ref, left_on="id", right_on="guid", suffixes=("", "_ref"), validate="one_to_one")  # join on guid
    assert len(m) == 400
    for col, ref_col in [
        ("confidence", "confidence_ref"),
        ("variability", "variability_ref"),
        ("threshold_closeness", "threshold_closeness_ref"),
        ("variability_ci", "variability_include_ci"),
    ]:
        if ref_col not in m:  # the burn-out file was computed without --include_ci
            continue
        np.testing.assert_allclose(m[col], m[ref_col], atol=1e-6, rtol=0, err_msg=col)
    # allenai stores correctness as a count and forgetfulness 1000 for never-learned examples
    np.testing.assert_array_equal(m["correct_count"], m["correctness_ref"])
    np.testing.assert_array_equal(np.where(m["never_learned"], 1000, m["forgetting_events"]), m["forgetfulness"])
