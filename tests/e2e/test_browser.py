"""What a person does in the browser: move a slider, share the link, download a subset, brush the map."""

import re
import time
from pathlib import Path

import pandas as pd
import pytest

from cartography_core import RegionThresholds, compute_stats, region_codes
from tests.e2e.conftest import ARTIFACTS, wait_idle
from tests.e2e.server import CHROMIUM

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")

SAMPLES = Path(__file__).resolve().parents[2] / "sample_logs"
STATS = compute_stats(SAMPLES / "rotten_tomatoes" / "seed-0")


def n_hard(amb_var: float) -> int:
    codes = region_codes(
        STATS["confidence"].to_numpy(), STATS["variability"].to_numpy(), RegionThresholds(amb_var, 0.5, 0.5)
    )
    return int((codes == 2).sum())


def matches(page) -> int:
    text = page.get_by_text(re.compile(r"[\d,]+ examples? match")).inner_text()
    return int(re.match(r"([\d,]+) examples? match", text).group(1).replace(",", ""))


def test_slider_changes_url_and_counts_and_the_link_reopens_the_view(server, page, browser):
    page.goto(server)
    wait_idle(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "main_view.png"), full_page=True)
    assert matches(page) == n_hard(0.2)
    slider = page.get_by_role("slider", name=re.compile("Ambiguous"))
    slider.focus()
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    page.wait_for_function("() => window.location.search.includes('amb_var=0.25')", timeout=20_000)
    wait_idle(page)
    deadline = time.time() + 20
    while matches(page) != n_hard(0.25) and time.time() < deadline:
        time.sleep(0.3)
    assert matches(page) == n_hard(0.25) != n_hard(0.2)

    page.get_by_role("button", name="Links to this view").click()  # what a user copies and sends
    shared = page.get_by_test_id("stCode").first.inner_text().strip()
    assert "amb_var=0.25" in shared and shared.startswith(server)
    fresh = browser.new_context(viewport={"width": 1500, "height": 1800}).new_page()
    fresh.goto(shared)
    wait_idle(fresh)
    assert matches(fresh) == n_hard(0.25)
    assert fresh.get_by_role("slider", name=re.compile("Ambiguous")).input_value() == "0.25"
    fresh.context.close()


def test_download_the_subset(server, page):
    page.goto(server + "/?subset=ambiguous")
    wait_idle(page)
    n = matches(page)
    with page.expect_download() as info:
        page.get_by_role("button", name=re.compile(r"Subset .* csv")).click()
    download = info.value
    assert download.suggested_filename.startswith("rotten_tomatoes-seed-0_ambiguous_")
    rows = pd.read_csv(download.path())
    codes = region_codes(STATS["confidence"].to_numpy(), STATS["variability"].to_numpy(), RegionThresholds())
    want = set(STATS["id"].to_numpy()[codes == 1].tolist())
    assert len(rows) == n == len(want) and set(rows["id"]) == want
    assert {"text", "label_name", "confidence", "region"} <= set(rows.columns)

    # the paper's top-q% rule: the file names q, and holds the q% of highest variability
    page.goto(server + "/?subset=ambiguous&rule=top+q%25&q=10")
    wait_idle(page)
    with page.expect_download() as info:
        page.get_by_role("button", name=re.compile(r"Subset .* csv")).click()
    assert info.value.suggested_filename.startswith("rotten_tomatoes-seed-0_ambiguous_top-10pct_")
    rows = pd.read_csv(info.value.path())
    assert len(rows) == len(STATS) // 10
    assert rows["variability"].min() >= STATS.to_pandas()["variability"].nlargest(len(STATS) // 10).min()


def test_brush_the_map(server, page, server_log):
    page.goto(server)
    wait_idle(page)
    canvas = page.locator('[data-testid="stVegaLiteChart"] canvas').first
    box = canvas.bounding_box()
    x0, y0 = box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.45
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + box["width"] * 0.2, y0 + box["height"] * 0.25, steps=10)
    page.mouse.up()
    page.wait_for_function("() => window.location.search.includes('subset=brush')", timeout=20_000)
    wait_idle(page)
    query = page.evaluate("() => window.location.search")
    lo, hi = (float(v) for v in re.findall(r"var_range=([\d.]+)", query))
    clo, chi = (float(v) for v in re.findall(r"conf_range=([\d.]+)", query))
    assert 0 <= lo < hi <= 0.5 and 0 <= clo < chi <= 1
    v, c = STATS["variability"].to_numpy(), STATS["confidence"].to_numpy()
    want = int(((v >= lo) & (v <= hi) & (c >= clo) & (c <= chi)).sum())
    deadline = time.time() + 20
    while matches(page) != want and time.time() < deadline:
        time.sleep(0.3)
    assert matches(page) == want > 0
    log = server_log.read_text()
    assert "Session State API" not in log and "Traceback" not in log, log[-3000:]


def test_selecting_a_row_shows_its_text_and_trajectory(server, page):
    page.goto(server)
    wait_idle(page)
    grid = page.locator('[data-testid="stDataFrame"]').nth(2)  # after region counts and likely label errors
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 14, box["y"] + 35 + 17)  # the first row's selection box
    heading = page.get_by_text(re.compile(r"^Example \d+"))
    heading.wait_for(timeout=30_000)
    example_id = int(re.match(r"Example (\d+)", heading.inner_text()).group(1))
    hardest = STATS.to_pandas().assign(
        code=region_codes(STATS["confidence"].to_numpy(), STATS["variability"].to_numpy())
    )
    hardest = hardest[hardest.code == 2].sort_values(["confidence", "id"]).iloc[0]
    assert example_id == hardest["id"]
    text = pd.read_parquet(SAMPLES / "rotten_tomatoes" / "examples.parquet").set_index("id").loc[example_id, "text"]
    page.get_by_test_id("stText").get_by_text(text, exact=True).wait_for(timeout=10_000)  # as plain text
    assert page.locator('[data-testid="stVegaLiteChart"]').count() >= 3  # map, histograms, the trajectory
    # the click reran the examples panel only: its share link names the selected example, and opens it
    page.get_by_role("button", name="Links to this view").click()
    shared = page.get_by_test_id("stCode").first.inner_text().strip()
    assert f"example={example_id}" in shared, shared
    fresh = page.context.new_page()
    fresh.goto(shared)
    wait_idle(fresh)
    fresh.get_by_text(f"Example {example_id}:").wait_for(timeout=30_000)
    fresh.close()


def shown_example(page) -> int | None:
    """The id in the heading of the example shown below the table, None when none is shown."""
    heading = page.get_by_text(re.compile(r"^Example \d+:"))
    return int(re.match(r"Example (\d+)", heading.inner_text()).group(1)) if heading.count() else None


def test_a_ticked_example_stays_itself_when_the_list_changes_and_unticking_clears_it(server, page):
    """A new user's trial: the table's tick used to stay at its position while the list changed under it, so
    another example was shown and put in the link (or an IndexError when the list got shorter)."""
    page.goto(server + "/?subset=ambiguous")
    wait_idle(page)
    grid = page.locator('[data-testid="stDataFrame"]').nth(2)
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 14, box["y"] + 35 + 17 + 35 * 3)  # the fourth row
    page.get_by_text(re.compile(r"^Example \d+:")).wait_for(timeout=30_000)
    picked = shown_example(page)
    ambiguous = STATS.to_pandas().assign(
        code=region_codes(STATS["confidence"].to_numpy(), STATS["variability"].to_numpy())
    )
    listed = ambiguous[ambiguous.code == 1].sort_values(["confidence", "id"])["id"].tolist()
    assert picked == listed[3]
    page.wait_for_function(f"() => window.location.search.includes('example={picked}')", timeout=20_000)

    # another subset: its fourth row is another example, and the one picked stays shown and linked
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Subset").click()
    page.get_by_role("option", name="hard-to-learn", exact=True).click()
    page.wait_for_function("() => !window.location.search.includes('subset=ambiguous')", timeout=20_000)
    wait_idle(page)
    assert shown_example(page) == picked
    assert f"example={picked}" in page.evaluate("() => window.location.search")
    search = page.get_by_label("Search the text")
    search.fill("zzzz no such words")  # no row left: the tick's old position is nowhere
    search.press("Enter")
    page.wait_for_function("() => window.location.search.includes('search=')", timeout=20_000)
    wait_idle(page)
    assert matches(page) == 0
    assert shown_example(page) == picked
    page.get_by_text(re.compile(r"This example is not among the 0 that match")).wait_for(timeout=10_000)
    assert page.get_by_test_id("stException").count() == 0
    assert f"example={picked}" in page.evaluate("() => window.location.search")

    # tick and untick a row: nothing is shown and the link names no example
    search.fill("")
    search.press("Enter")
    wait_idle(page)
    grid = page.locator('[data-testid="stDataFrame"]').nth(2)
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 14, box["y"] + 35 + 17)
    page.wait_for_function(f"() => !window.location.search.includes('example={picked}')", timeout=20_000)
    wait_idle(page)
    first = shown_example(page)
    assert first is not None and first != picked
    page.mouse.click(box["x"] + 14, box["y"] + 35 + 17)
    page.wait_for_function("() => !window.location.search.includes('example=')", timeout=20_000)
    wait_idle(page)
    assert shown_example(page) is None


def test_the_page_requests_nothing_beyond_its_own_origin(server, page):
    """A self-hosted tool works offline: every request of the page, its tabs and a selected example goes to
    the server that served it (no icon font, no CDN), and there is no Deploy button for annotators."""
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(server)
    wait_idle(page)
    for tab in ("Per class", "Runs", "Data map"):
        page.get_by_role("tab", name=tab).click()
        time.sleep(1.0)
    wait_idle(page)
    foreign = [u for u in requests if not (u.startswith(server) or u.startswith(("data:", "blob:")))]
    assert requests and not foreign, foreign
    assert page.get_by_role("button", name="Deploy").count() == 0
