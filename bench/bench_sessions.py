"""Many annotators opening one link at once: time until every session's map is painted, and server memory.

    python bench/bench_sessions.py [--n 1000000] [--sessions 1,8,32]     # from the repository root

One server (``streamlit run app/main.py -- --logs ROOT``) on a synthetic run of N examples (bench_app's);
a first page warms it (scores computed once). Then S browser contexts of one headless Chromium open the
same link together (asyncio: each page waits for its own map in the page, nobody polls from outside).
Reports the first and last paint, the CPU seconds the server and the browsers spent, and the server's
resident memory (VmRSS) afterwards.

The floor: the same S contexts opening the same server software on an empty log root (a title and one
notice, nothing to compute or draw), in the same run. On a 2-core machine the browsers share the cores
with the server, so S sessions cost at least S times a browser's own work. Appends to bench/results/app.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from bench_app import make_root  # noqa: E402

from tests.e2e.server import CHROMIUM, FLAGS, start_streamlit  # noqa: E402

LINK = "?rule=top+q%25&q=10&subset=hard-to-learn"  # a shared view: the paper's hard-to-learn 10%
MAP = '[data-testid="stVegaLiteChart"] canvas'
EMPTY = '[data-testid="stAlert"]'  # the empty log root's notice
IDLE = '[data-test-script-state="notRunning"]'


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its children (the browser's renderers, GPU and network)."""
    total = 0.0
    for p in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


async def open_page(browser, url: str, selector: str, t0: float) -> tuple[float, object]:
    context = await browser.new_context(viewport={"width": 1500, "height": 1200})
    page = await context.new_page()
    await page.goto(url, wait_until="commit")
    await page.wait_for_selector(selector, state="attached", timeout=600_000)
    await page.wait_for_selector(IDLE, state="attached", timeout=600_000)
    return time.perf_counter() - t0, context


async def together(browser, url: str, selector: str, sessions: int, server: psutil.Process, browser_pid: int) -> dict:
    cpu0, browser0 = sum(server.cpu_times()[:2]), cpu_seconds(browser_pid)
    t0 = time.perf_counter()
    done = await asyncio.gather(*(open_page(browser, url, selector, t0) for _ in range(sessions)))
    out = {
        "first": min(t for t, _ in done),
        "last": max(t for t, _ in done),
        "server_cpu": sum(server.cpu_times()[:2]) - cpu0,
        "browser_cpu": cpu_seconds(browser_pid) - browser0,
        "rss_mb": server.memory_info().rss / 2**20,
    }
    for _, context in done:
        await context.close()
    return out


async def measure(root: Path, selector: str, counts: list[int]) -> list[dict]:
    from playwright.async_api import async_playwright

    proc, url = start_streamlit(root, cache="off")
    server = psutil.Process(proc.pid)
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
            pid = next(  # the browser process itself (its renderers, GPU and network processes are its children)
                c.pid
                for c in psutil.Process().children(recursive=True)
                if "chrom" in c.name() and not any(a.startswith("--type=") for a in c.cmdline())
            )
            await together(browser, url + LINK, selector, 1, server, pid)  # computes the scores once
            results = [{"sessions": s, **await together(browser, url + LINK, selector, s, server, pid)} for s in counts]
            await browser.close()
    finally:
        proc.terminate()
        proc.wait(10)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--sessions", default="1,8,32")
    args = parser.parse_args()
    counts = [int(x) for x in args.sessions.split(",")]
    ours = asyncio.run(measure(make_root(args.n), MAP, counts))
    floor = asyncio.run(measure(Path(tempfile.mkdtemp(prefix="empty-logs-")), EMPTY, counts))
    lines = []
    for a, b in zip(ours, floor):
        s = a["sessions"]
        lines.append(
            f"- {s} sessions opening one link together at {args.n:,} examples: first painted {a['first']:.1f} s, "
            f"all painted {a['last']:.1f} s; CPU per session: server {a['server_cpu'] / s:.2f} s, browser "
            f"{a['browser_cpu'] / s:.2f} s; server RSS afterwards {a['rss_mb']:.0f} MB. Floor (same server, "
            f"empty log root): all painted {b['last']:.1f} s, browser CPU per session {b['browser_cpu'] / s:.2f} s"
        )
        print(lines[-1], flush=True)
    with open(ROOT / "bench" / "results" / "app.md", "a") as fh:
        fh.write(f"\n## {time.strftime('%Y-%m-%d %H:%M')}: concurrent sessions, headless Chromium, 2 cores\n\n")
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
