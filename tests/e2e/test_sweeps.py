"""A learning-rate sweep on digits through the form: the client-side checks and the grid confirmation, then six
trials on the real fleet watched live (no reload), a trial pruned with its reason, Optuna's charts, and the
best trial promoted to a full run.

The "trials to try first" fix the order of the learning rates, so pruning does not depend on the sampler:
the median pruner waits for 3 finished trials, then stops a trial that is below the median of the earlier
trials at an epoch. With 2 trials at a time, 0.01 and 0.02 run first, then 0.005 and 1e-6, then 2e-6 and
0.008: at least the 2e-6 trial starts after 3 trials finished, and it is far below them.
"""
import re
import time

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.e2e.test_shell import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(480)]
SWEEP_TIMEOUT_S = 240
WARM_START = ['{"lr": 0.01}', '{"lr": 0.02}', '{"lr": 0.005}', '{"lr": 1e-6}', '{"lr": 2e-6}', '{"lr": 0.008}']
FINAL_STATES = {"complete", "pruned", "fail"}


@pytest.fixture(scope="module")
def small_mlp(stack):
    """A small MLP design in the demo project, made through the API as a script would."""
    session = requests.Session()
    token = session.post(f"{stack.url}/api/auth/token/", json={"username": "admin", "password": "e2e-admin-pass-1"},
                         timeout=30).json()["token"]
    session.headers["Authorization"] = f"Token {token}"
    project = next(p for p in session.get(f"{stack.url}/api/projects/", timeout=30).json() if p["name"] == "demo")
    response = session.post(f"{stack.url}/api/models/", json={
        "project": project["id"], "name": "digits-mlp-sweep", "spec": {"preset": "mlp", "options": {"hidden": [32]}}},
        timeout=30)
    assert response.status_code == 201, response.text
    return {"design": response.json()["id"], "project": project["id"]}


def choose_dataset(page, name: str) -> None:
    value = page.evaluate("""(name) => [...document.querySelector("[data-testid=sweep-dataset]").options]
        .find((option) => option.textContent.trim().startsWith(name + " ")).value""", name)
    page.get_by_test_id("sweep-dataset").select_option(value)


def check_the_form_catches_mistakes(page, row) -> None:
    """A bound the wrong way round is caught as it is typed; the server's grid checks come back to the form."""
    row.get_by_test_id("param-low").fill("0.1")
    row.get_by_test_id("param-high").fill("0.05")
    expect(row).to_contain_text("low (0.1) is greater than high (0.05); swap them.")
    row.get_by_test_id("param-low").fill("0")
    expect(row).to_contain_text("a log scale needs low > 0")
    screenshot(page, "sweep-form-client-check")
    page.get_by_test_id("sweep-submit").click()
    expect(page.get_by_test_id("error-search_space")).to_contain_text("Fix the marked parameters first")

    # A grid larger than the budget: the server counts it, and the form offers to run only part of it.
    row.get_by_test_id("param-type").select_option("categorical")
    row.get_by_test_id("param-choices").fill("0.001, 0.01, 0.1")
    page.get_by_test_id("sweep-sampler").select_option("grid")
    expect(page.get_by_test_id("sampler-help")).to_contain_text("every combination")
    page.get_by_test_id("sweep-n-trials").fill("2")
    page.get_by_test_id("sweep-submit").click()
    expect(page.get_by_test_id("grid-confirm")).to_contain_text("The grid has 3 points but the budget is 2 trials")
    expect(page.get_by_test_id("grid-confirm-button")).to_have_text("Run only 2 of them")
    expect(page.get_by_test_id("error-n_trials")).to_contain_text("grid has 3 points")
    screenshot(page, "sweep-form-grid-confirm")
    row.get_by_test_id("param-type").select_option("float")


def fill_the_sweep(page, design_id: int) -> None:
    page.get_by_test_id("sweep-model").select_option(f"design:{design_id}")
    page.get_by_test_id("sweep-name").fill("e2e lr sweep")
    page.get_by_test_id("sweep-epochs").fill("4")
    row = page.get_by_test_id("space-row").first
    expect(row.get_by_test_id("param-name")).to_have_value("lr")
    check_the_form_catches_mistakes(page, row)
    row.get_by_test_id("param-low").fill("1e-6")
    row.get_by_test_id("param-high").fill("0.05")
    expect(row.get_by_test_id("param-log")).to_be_checked()
    expect(row.locator(".field-error")).to_have_count(0)
    expect(page.get_by_test_id("objective-metric")).to_have_value("val_accuracy")
    expect(page.get_by_test_id("objective-direction")).to_have_value("maximize")
    page.get_by_test_id("sweep-sampler").select_option("random")
    page.get_by_test_id("sweep-pruner").select_option("median")
    expect(page.get_by_test_id("pruner-help")).to_contain_text("median of earlier trials")
    page.get_by_test_id("sweep-n-trials").fill("6")
    page.get_by_test_id("sweep-parallelism").fill("2")
    page.locator("#warm-start-box summary").click()
    page.get_by_test_id("sweep-warm-start").fill("\n".join(WARM_START))
    screenshot(page, "sweep-form")


def trial_states(page) -> list[str]:
    return page.evaluate("() => [...document.querySelectorAll('[data-testid=trial-row]')].map((row) => row.dataset.state)")


def watch_until_finished(page) -> list[tuple]:
    """The (rows, states) the table went through until the sweep finished, without reloading the page."""
    seen: list[tuple] = []
    deadline = time.monotonic() + SWEEP_TIMEOUT_S
    while time.monotonic() < deadline:
        states = trial_states(page)
        snapshot = (len(states), tuple(states))
        if not seen or seen[-1] != snapshot:
            seen.append(snapshot)
        status = page.get_by_test_id("sweep-status").get_attribute("data-status")
        if status in ("finished", "stopped", "failed") and page.get_by_test_id("live-state").text_content() == "finished":
            return seen
        if len(seen) == 3:
            screenshot(page, "sweep-live")
        page.wait_for_timeout(300)
    raise AssertionError(f"the sweep did not finish in {SWEEP_TIMEOUT_S} s; the table went through {seen}")


def test_a_pruned_learning_rate_sweep_from_the_form_to_a_promoted_run(page, stack, small_mlp):
    sign_in(page, stack)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{stack.url}/sweeps/?project={small_mlp['project']}")  # other tests add projects of their own
    if page.get_by_test_id("empty-state").count():
        expect(page.get_by_test_id("empty-state")).to_contain_text("No sweeps yet")
        screenshot(page, "sweeps-empty")
    page.get_by_test_id("new-sweep").click()
    expect(page).to_have_url(re.compile(r"/sweeps/new/"))
    choose_dataset(page, "digits")
    fill_the_sweep(page, small_mlp["design"])
    page.get_by_test_id("sweep-submit").click()
    expect(page).to_have_url(re.compile(r"/sweeps/\d+/\?created=1$"), timeout=60_000)
    expect(page.get_by_test_id("sweep-created")).to_be_visible()
    page.evaluate("() => { window.sameDocument = true; }")

    history = watch_until_finished(page)
    assert page.evaluate("() => window.sameDocument") is True, "the page reloaded"
    # live: the table went through several states on this one page, starting before any trial had ended (the
    # six warm-start trials may all be listed, waiting, from the first look: the controller enqueues them at once)
    assert len(history) >= 3 and not set(history[0][1]) & FINAL_STATES, f"the table did not fill in live: {history}"
    expect(page.get_by_test_id("sweep-status")).to_have_attribute("data-status", "finished")
    expect(page.get_by_test_id("sweep-end-reason")).to_contain_text("all 6 trials ran")
    states = trial_states(page)
    assert len(states) == 6 and set(states) <= FINAL_STATES, states
    assert "pruned" in states, f"no trial was pruned: {states}"
    pruned = page.locator("[data-testid=trial-row][data-state=pruned]").first
    expect(pruned.get_by_test_id("pruned-why")).to_contain_text("below the median")
    expect(page.get_by_test_id("sweep-progress-text")).to_contain_text("6 of 6 trials")
    screenshot(page, "sweep-finished")

    # The intermediate values: one line per trial, the pruned ones dashed.
    chart = page.get_by_test_id("intermediate-chart")
    expect(chart).to_have_attribute("data-traces", "6")
    assert int(chart.get_attribute("data-pruned")) == states.count("pruned")
    # Optuna's charts: the history is drawn; a tab shows its figure or why there is none yet.
    expect(page.get_by_test_id("optuna-chart")).to_have_attribute("data-drawn", "history", timeout=20_000)
    expect(page.get_by_test_id("optuna-chart").locator(".main-svg").first).to_be_visible()
    page.get_by_test_id("chart-tab-timeline").click()
    expect(page.get_by_test_id("optuna-chart")).to_have_attribute("data-drawn", "timeline", timeout=20_000)
    page.get_by_test_id("chart-tab-history").click()
    expect(page.get_by_test_id("optuna-chart")).to_have_attribute("data-drawn", "history")
    screenshot(page, "sweep-charts")

    # Two trials compared as runs.
    boxes = page.locator(".trial-box")
    boxes.nth(0).check()
    boxes.nth(1).check()
    expect(page.get_by_test_id("compare-trials")).to_have_attribute("href", re.compile(r"^/runs/compare/\?runs=\d+,\d+$"))

    trial_run = page.locator("[data-testid=trial-row][data-trial='0'] a").get_attribute("href")

    # Promote the best trial: a new run with the trial's settings and 2 epochs.
    expect(page.get_by_test_id("best-value")).to_be_visible()
    page.get_by_test_id("promote-epochs").fill("2")
    page.get_by_test_id("promote").click()
    expect(page.get_by_test_id("promote-result")).to_contain_text("Promoted")
    screenshot(page, "sweep-promoted")
    page.get_by_test_id("promoted-run").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    expect(page.locator("main h1")).to_contain_text("promoted")
    screenshot(page, "sweep-promoted-run")

    page.goto(f"{stack.url}{trial_run}")  # a trial's run names its sweep
    expect(page.get_by_test_id("run-sweep")).to_contain_text("trial 0 of sweep")
    page.get_by_test_id("run-sweep").click()
    expect(page).to_have_url(re.compile(r"/sweeps/\d+/$"))

    page.goto(f"{stack.url}/sweeps/?project={small_mlp['project']}")  # other tests add projects of their own
    row = page.locator("tr[data-status=finished]", has_text="e2e lr sweep")
    expect(row.get_by_test_id("sweep-trials")).to_contain_text("6/6")
    assert not errors, errors
