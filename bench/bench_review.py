"""The review loop at scale: a verdict recorded and the next example shown, and the verdict overlay on the map.

    python bench/bench_review.py [--n 1000000] [--verdicts 20] [--repeats 3]     # from the repository root

One server on a synthetic run of N examples (bench_app's) with a fresh verdicts database. In headless
Chromium, an annotator on the review page (``page=review``, queue = every example, hardest first) presses
Y ("label is correct") ``--verdicts`` times; each time is measured from the key press until the next example's
heading is on the page (after a 1 s pause on each example, as a reader would make). Then 1,000 verdicts are
added to the database and the map's paint is timed without and with ``color=verdict``. Medians; appends to
bench/results/review.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from bench_app import make_root, paint  # noqa: E402

from cartography_core.reviews import ReviewStore, Verdict  # noqa: E402
from tests.e2e.server import CHROMIUM, FLAGS, start_streamlit  # noqa: E402


def idle(page) -> None:
    page.wait_for_selector('[data-test-script-state="notRunning"]', timeout=600_000)


def main() -> None:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--verdicts", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    root = make_root(args.n)
    db = Path(tempfile.mkdtemp(prefix="bench-reviews-")) / "reviews.sqlite3"
    proc, url = start_streamlit(root, cache="off", reviews_db=db)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
            paint(browser, url)[1].context.close()  # scores computed once, shared by the sessions below
            page = browser.new_context(viewport={"width": 1400, "height": 1400}).new_page()
            page.goto(f"{url}/?page=review&subset=all&reviewer=bench")
            page.wait_for_selector("text=Label is correct", timeout=600_000)
            idle(page)
            times = []
            for i in range(args.verdicts):
                time.sleep(1.0)  # an annotator reads the example first; a key pressed mid-render can be lost
                t0 = time.perf_counter()
                page.locator("body").press("y")
                page.get_by_text(f"({i + 2:,} of {args.n:,} in this queue)").wait_for(timeout=60_000)
                times.append(time.perf_counter() - t0)
                idle(page)
            page.context.close()
            with ReviewStore(db) as store:
                stored = store.history().num_rows
                store.add(Verdict("synthetic", i, "bulk", "correct") for i in range(1000))
            plain, colored = [], []
            for _ in range(args.repeats):
                t, pg = paint(browser, f"{url}/?subset=all")
                plain.append(t)
                pg.context.close()
                t, pg = paint(browser, f"{url}/?subset=all&color=verdict")
                colored.append(t)
                pg.context.close()
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)
    lines = [
        f"\n## {time.strftime('%Y-%m-%d %H:%M')}: review loop at {args.n:,} examples, headless Chromium, 2 cores\n",
        f"- verdict (key Y) to the next example shown: median {statistics.median(times) * 1000:.0f} ms, "
        f"min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f} ({len(times)} verdicts; {stored} stored)",
        f"- map paint, {args.repeats} each: plain median {statistics.median(plain):.2f} s, coloured by verdict "
        f"(1,000 verdicts) median {statistics.median(colored):.2f} s: "
        f"+{statistics.median(colored) - statistics.median(plain):.2f} s",
    ]
    out = ROOT / "bench" / "results" / "review.md"
    with open(out, "a") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
