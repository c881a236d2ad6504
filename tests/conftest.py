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
