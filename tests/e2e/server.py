"""Start the dashboard on a free loopback port, and the Chromium flags that work here (tests and bench/)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def start_streamlit(
    logs: Path | None = None,
    output=subprocess.DEVNULL,
    cache: str = "off",
    reviews_db: Path | None = None,
    env_extra: dict | None = None,
    app: Path = REPO / "app" / "main.py",
) -> tuple[subprocess.Popen, str]:
    """``streamlit run app/main.py [-- --logs LOGS --reviews-db DB]`` on a free port, with
    ``CARTOGRAPHY_CACHE=cache`` (no disk cache by default); returns (process, base URL) once healthy. ``app``:
    another script to serve (the benchmark's floor page). Without
    ``reviews_db`` the verdicts go to a fresh temporary database, never the user's own."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(app), "--server.headless=true",
        "--server.address=127.0.0.1", f"--server.port={port}", "--browser.gatherUsageStats=false",
        "--server.fileWatcherType=none",
    ]  # fmt: skip
    if reviews_db is None:
        reviews_db = Path(tempfile.mkdtemp(prefix="cartography-reviews-")) / "reviews.sqlite3"
    cmd += ["--", "--reviews-db", str(reviews_db)] + (["--logs", str(logs)] if logs is not None else [])
    env = {**os.environ, "CARTOGRAPHY_CACHE": cache, **(env_extra or {})}
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=output, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("streamlit did not start within 60 s")
