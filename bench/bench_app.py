"""Dashboard speed in headless Chromium: navigation to a painted map, the table's update after a slider, and a
click on an example until its trajectory is drawn.

    python bench/bench_app.py [--sizes 10000,100000,1000000,10000000]   # from the repository root

For each size a synthetic run (5 epochs, 3 classes, parquet; short texts in examples.parquet up to 1M) is
served alone by ``streamlit run app/main.py -- --logs ROOT``. "cold" is the first navigation (the server
reads the logs and computes the scores); "warm" a fresh page afterwards (shared in-memory cache); "after a
restart" the first page of a new server that finds the scores in its disk cache. At 1M the
ambiguity slider is moved and the time until the table's count changes is measured; from 1M up, rows of the
examples table are clicked in turn and the time until the example's heading and trajectory are drawn is
measured, beside the same click on the floor page. Appends to bench/results/app.md.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from bench_stats import DATA, make_parquet_log  # noqa: E402

from tests.e2e.server import CHROMIUM, FLAGS, start_streamlit  # noqa: E402


def make_root(n: int) -> Path:
    root = DATA / f"app_{n}"
    run = make_parquet_log(root / "synthetic" / "seed-0", n, 5, 3)
    if n <= 1_000_000 and not (run / "examples.parquet").exists():
        words = np.array(["good", "bad", "plot", "acting", "boring", "superb", "film", "scene"])
        rng = np.random.default_rng(0)
        ids = pq.read_table(run / "dynamics" / "epoch_0.parquet", columns=["id"])["id"]
        texts = [" ".join(w) for w in words[rng.integers(0, len(words), (n, 8))]]
        pq.write_table(pa.table({"id": ids, "text": texts}), run / "examples.parquet")
    return root


def paint(browser, url: str, chart: str = "canvas") -> tuple[float, object]:
    page = browser.new_context(viewport={"width": 1500, "height": 1200}).new_page()
    t0 = time.perf_counter()
    page.goto(url)
    page.wait_for_selector(f'[data-testid="stVegaLiteChart"] {chart}', timeout=600_000)
    page.wait_for_selector('[data-test-script-state="notRunning"]', timeout=600_000)
    return time.perf_counter() - t0, page


def measure_floor(browser, repeats: int) -> tuple[float, float]:
    """Medians of ``floor_app.py``'s navigation-to-painted time (Streamlit draws its ten points as SVG) and of a
    click on a row until its heading and trajectory are drawn."""
    proc, url = start_streamlit(app=ROOT / "bench" / "floor_app.py")
    try:
        paint(browser, url, "svg")[1].context.close()  # the server's first run
        times = []
        for _ in range(repeats):
            t, page = paint(browser, url, "svg")
            times.append(t)
            if len(times) == repeats:
                clicks = click_times(page, grid=1, charts=2, repeats=2 * repeats + 1)
            page.context.close()
        return statistics.median(times), statistics.median(clicks)
    finally:
        proc.terminate()
        proc.wait(30)


HEADING = "() => [...document.querySelectorAll('p')].map(e => e.innerText).find(t => /^Example \\d+/.test(t)) || ''"


def click_times(page, grid: int, charts: int, repeats: int) -> list[float]:
    """Seconds from a click on a table row (the ``grid``-th table's rows 1-6 in turn) until the example's heading
    has changed, the page's ``charts``-th chart (the trajectory) is drawn and the script is idle."""
    box = page.locator('[data-testid="stDataFrame"]').nth(grid)
    box.scroll_into_view_if_needed()
    box = box.bounding_box()
    times = []
    for i in range(repeats):
        before = page.evaluate(HEADING)
        t0 = time.perf_counter()
        page.mouse.click(box["x"] + 14, box["y"] + 35 + 17 + 35 * (i % 6))  # the row's selection box
        page.wait_for_function(f"b => ({HEADING})() !== b && ({HEADING})() !== ''", arg=before, timeout=60_000)
        page.wait_for_function(
            "n => { const c = document.querySelectorAll('[data-testid=\"stVegaLiteChart\"]'); "
            "return c.length >= n && c[n - 1].querySelector('canvas, svg') !== null; }",
            arg=charts,
            timeout=60_000,
        )
        page.wait_for_selector('[data-test-script-state="notRunning"]', timeout=60_000)
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => r()))")
        times.append(time.perf_counter() - t0)
    return times


def matches(page) -> str:
    return page.get_by_text(re.compile(r"[\d,]+ examples? match")).inner_text()


def main() -> None:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000,10000000")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    lines = [f"\n## {time.strftime('%Y-%m-%d %H:%M')}: navigation to painted map, headless Chromium, 2 cores\n"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        floor, floor_click = measure_floor(browser, args.repeats)
        lines.append(
            f"- floor: a page of the same Streamlit elements with ten rows of data (bench/floor_app.py): "
            f"{floor:.1f} s (median of {args.repeats}); a click on a row until its heading and trajectory are "
            f"drawn {floor_click:.2f} s (median of {2 * args.repeats + 1})"
        )
        for n in (int(x) for x in args.sizes.split(",")):
            root = make_root(n)
            cache = tempfile.mkdtemp(prefix="cartography-cache-")
            proc, url = start_streamlit(root, cache=cache)
            try:
                cold, page = paint(browser, url)
                page.context.close()
                warm = []
                for _ in range(args.repeats):
                    t, page = paint(browser, url)
                    warm.append(t)
                    if n >= 1_000_000 and len(warm) == args.repeats:
                        clicks = statistics.median(click_times(page, grid=2, charts=3, repeats=2 * args.repeats + 1))
                        lines.append(
                            f"- click on a row of the examples table until its heading and trajectory are drawn at "
                            f"{n:,}: {clicks:.2f} s (median of {2 * args.repeats + 1}; {clicks / floor_click:.2f}x "
                            "the floor's)"
                        )
                    if n == 1_000_000 and len(warm) == args.repeats:
                        updates = []
                        slider = page.get_by_role("slider", name=re.compile("Ambiguous"))
                        for _ in range(args.repeats):
                            before = matches(page)
                            slider.focus()
                            t0 = time.perf_counter()
                            page.keyboard.press("ArrowRight")
                            page.wait_for_function(
                                "b => !document.body.innerText.includes(b)", arg=before, timeout=60_000
                            )
                            updates.append(time.perf_counter() - t0)
                        lines.append(
                            f"- slider move to updated table at {n:,}: {statistics.median(updates):.2f} s "
                            f"(median of {len(updates)})"
                        )
                    page.context.close()
                proc.terminate()
                proc.wait(30)
                proc, url = start_streamlit(root, cache=cache)  # a restarted server finds the scores on disk
                restart, page = paint(browser, url)
                page.context.close()
                lines.append(
                    f"- {n:,} examples: cold {cold:.1f} s (reads logs, computes scores); "
                    f"warm {statistics.median(warm):.1f} s (median of {len(warm)}; "
                    f"{statistics.median(warm) / floor:.2f}x the floor); "
                    f"after a server restart {restart:.1f} s (scores from the disk cache)"
                )
                print(lines[-1], flush=True)
            finally:
                proc.terminate()
                proc.wait(30)
                shutil.rmtree(cache, ignore_errors=True)
        browser.close()
    text = "\n".join(lines) + "\n"
    print(text)
    with open(ROOT / "bench" / "results" / "app.md", "a") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
