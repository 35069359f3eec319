"""A real browser (Debian's Chromium driven by Playwright) against a real `manage.py up` stack."""
import shutil

import pytest

from tests._environment import TEST_OUTPUT
from tests.stack import EmbeddedStack

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]
SCREENSHOTS = TEST_OUTPUT / "screenshots"


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    running = EmbeddedStack(tmp_path_factory.mktemp("e2e") / "var", TRAINYARD_ADMIN_PASSWORD="e2e-admin-pass-1").start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
