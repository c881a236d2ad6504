"""Two annotators review the same link in two browser contexts: both verdicts are stored, agreement shows,
and the corrected dataset downloaded from the page holds them."""

import re
import time
from pathlib import Path

import pandas as pd
import pytest

from cartography_core import RegionThresholds, compute_stats, rank_order, region_codes
from cartography_core.reviews import ReviewStore
from tests.e2e.conftest import ARTIFACTS
from tests.e2e.server import CHROMIUM, start_streamlit

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")

SAMPLES = Path(__file__).resolve().parents[2] / "sample_logs"
RUN = "trec/seed-0"
NAMES = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]


def first_hard() -> tuple[int, str]:
    stats = compute_stats(SAMPLES / RUN)
    codes = region_codes(stats["confidence"].to_numpy(), stats["variability"].to_numpy(), RegionThresholds())
    order = rank_order(stats, "confidence", hardest=True)
    row = order[codes[order] == 2][0]
    return int(stats["id"][row].as_py()), NAMES[stats["label"][row].as_py()]


def wait_script(page, timeout=60_000):
    time.sleep(0.3)
    page.wait_for_selector('[data-testid="stApp"][data-test-connection-state="CONNECTED"]', timeout=timeout)
    page.wait_for_selector('[data-test-script-state="notRunning"]', timeout=timeout)


@pytest.fixture(scope="module")
def review_server(tmp_path_factory):
    db = tmp_path_factory.mktemp("reviews") / "reviews.sqlite3"
    proc, url = start_streamlit(reviews_db=db)
    yield url, db
    proc.terminate()
    proc.wait(10)


def test_two_annotators_review_one_link(review_server, browser):
    url, db = review_server
    example, gold = first_hard()
    link = f"{url}/?run=trec%2Fseed-0&subset=hard-to-learn&page=review"
    pages = {}
    for name in ("ann", "bob"):
        page = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1600}).new_page()
        page.goto(link)
        wait_script(page)
        page.get_by_role("textbox", name="Your name").fill(name)
        page.get_by_role("textbox", name="Your name").press("Enter")
        page.wait_for_function(f"() => window.location.search.includes('reviewer={name}')", timeout=20_000)
        wait_script(page)
        assert page.get_by_text(re.compile(rf"Example {example} \(1 of")).is_visible()
        pages[name] = page
    ARTIFACTS.mkdir(exist_ok=True)
    pages["ann"].screenshot(path=str(ARTIFACTS / "review_page.png"), full_page=True)

    # ann: the label is correct, by keyboard; bob: wrong label, the right class picked from the list
    pages["ann"].get_by_text("Gold label").click()  # focus out of the name field: keys go to the page
    pages["ann"].keyboard.press("y")
    pages["ann"].get_by_text(re.compile(r"Example \d+ \(2 of")).wait_for(timeout=20_000)
    wait_script(pages["ann"])
    right = "NUM" if gold != "NUM" else "LOC"
    bob = pages["bob"]
    bob.get_by_label("The right class").click()
    bob.get_by_role("option", name=right, exact=True).click()
    wait_script(bob)
    bob.get_by_role("button", name=re.compile(r"Wrong label")).click()
    bob.get_by_text(re.compile(r"Example \d+ \(2 of")).wait_for(timeout=20_000)
    wait_script(bob)

    with ReviewStore(db) as store:
        history = store.history("trec").to_pylist()
    assert sorted(r["annotator"] for r in history) == ["ann", "bob"]  # one verdict each, as given
    rows = {r["annotator"]: r for r in history}
    assert rows["ann"]["example_id"] == example and rows["ann"]["verdict"] == "correct"
    assert rows["bob"]["example_id"] == example and rows["bob"]["verdict"] == "wrong"
    assert rows["bob"]["new_label"] == right and rows["ann"]["gold"] == gold

    owner = pages["ann"]
    owner.goto(f"{url}/?run=trec%2Fseed-0&tab=Reviews")
    wait_script(owner)
    owner.get_by_role("tab", name="Reviews").click()
    assert owner.get_by_text("Disagreements (1)").is_visible()
    with owner.expect_download() as info:
        owner.get_by_role("button", name="Corrected csv").click()
    data = pd.read_csv(info.value.path())
    row = data.set_index("id").loc[example]
    assert row["verdict"] == "unresolved" and row["label_reviewed"] == gold and row["n_votes"] == 2
    assert (data["verdict"] == "unreviewed").sum() == len(data) - 1
    for p in pages.values():
        p.context.close()
