"""Fixtures shared by the test modules."""

import signal

import pytest


@pytest.fixture
def alarm():
    """Fail, not hang, if reading blocks (a FIFO opened by mistake): SIGALRM after 120 s."""

    def boom(*_):
        raise TimeoutError("reading blocked")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture(autouse=True)
def reviews_db(tmp_path_factory, monkeypatch):
    """Each test's own verdicts database and no invite secret: no test touches the user's data folder."""
    path = tmp_path_factory.mktemp("reviews") / "reviews.sqlite3"
    monkeypatch.setenv("CARTOGRAPHY_REVIEWS_DB", str(path))
    for name in ("CARTOGRAPHY_INVITE_SECRET", "CARTOGRAPHY_INVITE_SECRET_FILE"):
        monkeypatch.delenv(name, raising=False)
    return path


@pytest.fixture(scope="session")
def client():
    """A real Dask LocalCluster for the tests of the Dask engine: two worker processes, one thread each, so rows
    really travel between processes in the shuffle. Started once, on first use."""
    import distributed

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()
