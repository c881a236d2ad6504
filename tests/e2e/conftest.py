"""A real Streamlit server on a free loopback port, and Debian's Chromium driven by Playwright."""

import time

import pytest

from tests.e2e.server import CHROMIUM, FLAGS, REPO, start_streamlit

ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="session")
def server_log(tmp_path_factory):
    """The server's own output (warnings, exceptions), for tests that check it stays clean."""
    return tmp_path_factory.mktemp("server") / "streamlit.log"


@pytest.fixture(scope="session")
def server(server_log):
    with open(server_log, "w") as log:
        proc, url = start_streamlit(output=log)
        yield url
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1500, "height": 1800})
    page = context.new_page()
    yield page
    context.close()


def wait_idle(page, timeout=60_000):
    """Connected, script finished, and the map painted."""
    time.sleep(0.25)
    page.wait_for_selector('[data-testid="stApp"][data-test-connection-state="CONNECTED"]', timeout=timeout)
    page.wait_for_selector('[data-test-script-state="notRunning"]', timeout=timeout)
    page.wait_for_selector('[data-testid="stVegaLiteChart"] canvas', timeout=timeout)
