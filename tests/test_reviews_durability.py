"""The verdicts database under many writers and under writers killed at random moments."""

import random
import signal
import subprocess
import sys
import time
from multiprocessing import get_context

from cartography_core.reviews import ReviewStore, Verdict

WRITER = """
import sys
from cartography_core.reviews import ReviewStore, Verdict
store = ReviewStore(sys.argv[1])
for i in range(10_000):
    v = Verdict("ds", i, "writer", "wrong", new_label="Y", comment="x" * 300, uid=f"{sys.argv[2]}-{i}")
    store.add(v)
    print(v.uid, flush=True)  # acknowledged: add() has returned
"""


def _write_many(args):
    path, worker, n = args
    store = ReviewStore(path)
    for i in range(n):
        store.add(Verdict("ds", i, f"annotator-{worker}", "correct", uid=f"w{worker}-{i}"))
    store.close()
    return n


def test_eight_processes_write_500_verdicts_each(tmp_path):
    path = tmp_path / "reviews.sqlite3"
    ReviewStore(path).close()
    with get_context("spawn").Pool(8) as pool:
        assert sum(pool.map(_write_many, [(path, w, 500) for w in range(8)])) == 4000
    with ReviewStore(path) as store:
        rows = store.history()
        assert rows.num_rows == 4000
        assert len(set(rows["uid"].to_pylist())) == 4000
        assert sorted(set(rows["annotator"].to_pylist())) == [f"annotator-{w}" for w in range(8)]
        assert store.latest("ds").num_rows == 4000  # 500 examples x 8 annotators
        assert store.integrity() == "ok"


def test_writers_killed_at_random_moments_lose_no_acknowledged_verdict(tmp_path):
    path = tmp_path / "reviews.sqlite3"
    ReviewStore(path).close()
    rng = random.Random(0)
    acknowledged = set()
    for attempt in range(50):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), f"a{attempt}"], stdout=subprocess.PIPE, text=True
        )
        first = proc.stdout.readline()  # started writing
        time.sleep(rng.uniform(0, 0.05))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        acknowledged |= {line for line in (first + out).split() if line}
        assert proc.returncode == -signal.SIGKILL
    with ReviewStore(path) as store:
        assert store.integrity() == "ok"
        stored = set(store.history()["uid"].to_pylist())
    assert len(acknowledged) > 50
    assert acknowledged <= stored  # at most the one in flight at the kill is stored without an acknowledgement
    assert len(stored - acknowledged) <= 50
