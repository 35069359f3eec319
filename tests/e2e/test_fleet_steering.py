"""As an admin: two runs wait on the paused cpu queue; on the fleet page the later one goes to the top and the list
shows the new order; on its run page it is #1 in the queue; both are then cancelled and the queue resumed."""
import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.e2e.test_designer_and_runs import choose_dataset
from tests.e2e.test_shell import sign_in

pytestmark = pytest.mark.e2e


def launch_wine(page, stack) -> str:
    page.goto(f"{stack.url}/runs/new/")
    choose_dataset(page, "#launch-dataset", "wine")
    page.select_option("#launch-model", "preset:mlp")
    page.fill("#launch-form [name=epochs]", "1")
    page.get_by_test_id("launch-submit").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    return page.url.rstrip("/").rsplit("/", 1)[1]


def test_an_admin_moves_a_waiting_run_to_the_top_of_its_queue(page, stack):
    sign_in(page, stack)
    page.goto(f"{stack.url}/fleet/")
    page.get_by_test_id("queue-pause-cpu").click()
    expect(page.get_by_test_id("queue-cpu").get_by_test_id("queue-state")).to_have_text("paused", timeout=5_000)
    first, second = launch_wine(page, stack), launch_wine(page, stack)

    page.goto(f"{stack.url}/fleet/")
    waiting = page.get_by_test_id("queue-waiting-cpu").get_by_test_id("waiting-run")
    expect(waiting).to_have_count(2)
    expect(waiting.nth(0)).to_have_attribute("data-run", first)
    waiting.nth(1).locator('[data-run-move="top"]').click()
    expect(page.get_by_test_id("fleet-message")).to_contain_text("Moved")
    expect(waiting.nth(0)).to_have_attribute("data-run", second, timeout=5_000)
    screenshot(page, "fleet-steering")

    page.goto(f"{stack.url}/runs/{second}/")
    expect(page.get_by_test_id("run-queue-place")).to_contain_text("#1 in queue cpu")
    expect(page.get_by_test_id("run-steer")).to_be_visible()
    for run in (first, second):
        page.goto(f"{stack.url}/runs/{run}/")
        page.get_by_test_id("run-cancel").click()
        expect(page.get_by_test_id("run-status")).to_have_text("cancelled", timeout=10_000)
    page.goto(f"{stack.url}/fleet/")
    page.get_by_test_id("queue-resume-cpu").click()
    expect(page.get_by_test_id("queue-cpu").get_by_test_id("queue-state")).to_have_text("active", timeout=5_000)
