"""Start the dashboard on a free loopback port, and the Chromium flags that work here (tests and bench/)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
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
    logs: Path | None = None, output=subprocess.DEVNULL, cache: str = "off"
) -> tuple[subprocess.Popen, str]:
    """``streamlit run app/main.py [-- --logs LOGS]`` on a free port, with ``CARTOGRAPHY_CACHE=cache`` (no disk
    cache by default); returns (process, base URL) once healthy."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(REPO / "app" / "main.py"), "--server.headless=true",
        "--server.address=127.0.0.1", f"--server.port={port}", "--browser.gatherUsageStats=false",
        "--server.fileWatcherType=none",
    ]  # fmt: skip
    if logs is not None:
        cmd += ["--", "--logs", str(logs)]
    env = {**os.environ, "CARTOGRAPHY_CACHE": cache}
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
