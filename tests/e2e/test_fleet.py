"""As an admin on the live fleet page: pause the cpu queue, launch a run and see it wait, resume the queue and
see it start, drain the training worker and see it within 2 seconds (then resume it for the other tests)."""
import re
import time

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.e2e.test_designer_and_runs import choose_dataset
from tests.e2e.test_shell import sign_in

pytestmark = pytest.mark.e2e


def test_pause_a_queue_see_a_run_wait_resume_it_and_drain_a_worker(page, stack):
    sign_in(page, stack)
    page.goto(f"{stack.url}/fleet/")
    cpu_queue = page.get_by_test_id("queue-cpu")
    expect(cpu_queue.get_by_test_id("queue-state")).to_have_text("active")
    page.get_by_test_id("queue-pause-cpu").click()
    expect(cpu_queue.get_by_test_id("queue-state")).to_have_text("paused", timeout=5_000)

    page.goto(f"{stack.url}/runs/new/")
    choose_dataset(page, "#launch-dataset", "wine")
    page.select_option("#launch-model", "preset:mlp")
    page.fill("#launch-form [name=epochs]", "2")
    page.get_by_test_id("launch-submit").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    run_url = page.url
    time.sleep(6)  # longer than a paused queue's retry: the run must still wait
    page.reload()
    expect(page.get_by_test_id("run-status")).to_have_text("queued")

    page.goto(f"{stack.url}/fleet/")
    expect(cpu_queue.get_by_test_id("queue-waiting")).to_have_text("1")
    screenshot(page, "fleet-queue-paused")
    page.get_by_test_id("queue-resume-cpu").click()
    expect(cpu_queue.get_by_test_id("queue-state")).to_have_text("active", timeout=5_000)
    page.goto(run_url)
    expect(page.get_by_test_id("run-status")).to_have_text(re.compile("starting|running|succeeded"), timeout=60_000)

    page.goto(f"{stack.url}/fleet/")
    worker = page.locator('[data-testid=worker][data-worker^="cpu@"]')
    expect(worker.get_by_test_id("worker-status")).to_have_text("Online")
    worker.get_by_test_id("worker-drain").click()
    expect(worker.get_by_test_id("worker-status")).to_have_text("Draining", timeout=2_000)
    screenshot(page, "fleet-draining")
    worker.get_by_test_id("worker-resume").click()
    expect(worker.get_by_test_id("worker-status")).to_have_text("Online", timeout=5_000)
