"""Many annotators opening one link at once: time until every session's map is painted, and server memory.

    python bench/bench_sessions.py [--n 1000000] [--sessions 8,32]     # from the repository root

One server (``streamlit run app/main.py -- --logs ROOT``) on a synthetic run of N examples (bench_app's);
a first page warms it (scores computed once). Then S browser contexts open the same link together: each
navigation is started without waiting, and every page is polled until its map has painted and its script
finished. Reports the first and last paint, and the server's resident memory (VmRSS) afterwards. Appends to
bench/results/app.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from bench_app import make_root, paint  # noqa: E402

from tests.e2e.server import CHROMIUM, FLAGS, start_streamlit  # noqa: E402

LINK = "?rule=top+q%25&q=10&subset=hard-to-learn"  # a shared view: the paper's hard-to-learn 10%


def painted(page) -> bool:
    return bool(
        page.query_selector('[data-testid="stVegaLiteChart"] canvas')
        and page.query_selector('[data-test-script-state="notRunning"]')
    )


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def together(browser, url: str, sessions: int) -> tuple[float, float]:
    pages = [browser.new_context(viewport={"width": 1500, "height": 1200}).new_page() for _ in range(sessions)]
    t0 = time.perf_counter()
    for page in pages:
        page.goto(url, wait_until="commit")
    done: dict[int, float] = {}
    while len(done) < sessions and time.perf_counter() - t0 < 600:
        for i, page in enumerate(pages):
            if i not in done and painted(page):
                done[i] = time.perf_counter() - t0
        time.sleep(0.05)
    for page in pages:
        page.context.close()
    return min(done.values()), max(done.values()) if len(done) == sessions else float("inf")


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--sessions", default="8,32")
    args = parser.parse_args()
    root = make_root(args.n)
    lines = []
    proc, url = start_streamlit(root, cache="off")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
            warm, page = paint(browser, url + LINK)  # computes the scores once
            page.context.close()
            for s in (int(x) for x in args.sessions.split(",")):
                first, last = together(browser, url + LINK, s)
                lines.append(
                    f"- {s} sessions opening one link together at {args.n:,} examples: first painted {first:.1f} s, "
                    f"all painted {last:.1f} s; server RSS afterwards {rss_mb(proc.pid):.0f} MB "
                    f"(first page, computing the scores: {warm:.1f} s)"
                )
                print(lines[-1], flush=True)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)
    with open(ROOT / "bench" / "results" / "app.md", "a") as fh:
        fh.write(f"\n## {time.strftime('%Y-%m-%d %H:%M')}: concurrent sessions, headless Chromium, 2 cores\n\n")
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
