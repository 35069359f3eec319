"""Guidance in the browser: a run made to overfit shows its warning on the live run page; once it has finished,
its dataset recommends its settings with the run as evidence, "Launch this" fills the launch form in, and
"Start a sweep from these" opens the sweep form with them as trials to try first."""
import json
import time

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.e2e.test_designer_and_runs import choose_dataset
from tests.e2e.test_shell import sign_in

# Its 200-epoch run must still be running when the warning shows, then finish: on a busy 2-core host that took
# more than the 120 s it had, so the run has 6 minutes and the test more than the suite's 300 s.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(540)]
# Iris (120 training rows, 15 for validation), a 512×512 MLP, Adam at 0.01, batch 8, no weight decay: the
# training loss falls to ~0 while the validation loss climbs from its minimum near epoch 7.
OVERFIT = {"optimizer": "adam", "lr": 0.01, "batch_size": 8, "epochs": 200, "seed": 0}  # long enough to be seen running


@pytest.fixture(scope="module")
def api(stack):
    session = requests.Session()
    token = session.post(f"{stack.url}/api/auth/token/", json={"username": "admin", "password": "e2e-admin-pass-1"},
                         timeout=30).json()["token"]
    session.headers["Authorization"] = f"Token {token}"
    project = next(p["id"] for p in session.get(f"{stack.url}/api/projects/", timeout=30).json() if p["name"] == "demo")
    datasets = {d["name"]: d["id"] for d in session.get(f"{stack.url}/api/datasets/", timeout=30).json()}
    return {"session": session, "project": project, "datasets": datasets}


def test_an_overfitting_run_warns_live_then_its_dataset_recommends_it(page, stack, api):
    session, url = api["session"], stack.url
    design = session.post(f"{url}/api/models/", json={"project": api["project"], "name": "iris-big-mlp", "spec": {
        "preset": "mlp", "options": {"hidden": [512, 512]}}}, timeout=30).json()["id"]
    response = session.post(f"{url}/api/runs/", json={"project": api["project"], "dataset": api["datasets"]["iris"],
                                                      "model": design, "queue": "cpu", "name": "iris overfits",
                                                      "config": OVERFIT}, timeout=30)
    assert response.status_code == 201, response.text
    run_id = response.json()["id"]

    sign_in(page, stack)
    page.goto(f"{url}/runs/{run_id}/")
    warning = page.locator("[data-testid=finding][data-code=overfitting]")
    expect(warning).to_be_visible(timeout=120_000)
    status = session.get(f"{url}/api/runs/{run_id}/", timeout=30).json()["status"]
    expect(warning).to_contain_text("Suggested fix:")
    expect(warning).to_contain_text("weight decay")
    screenshot(page, "run-overfitting-warning")
    assert status == "running", f"the warning came only once the run was {status}"

    deadline = time.monotonic() + 360
    while session.get(f"{url}/api/runs/{run_id}/", timeout=30).json()["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, "the run did not finish"
        time.sleep(1)

    page.goto(f"{url}/datasets/{api['datasets']['iris']}/")
    panel = page.get_by_test_id("recommendations")
    expect(panel).to_have_attribute("data-state", "history", timeout=20_000)
    first = panel.locator("[data-testid=recommendation][data-source='this dataset']").first
    expect(first.get_by_test_id("recommendation-evidence")).to_contain_text(f"run {run_id}")
    expect(first).to_contain_text("On this dataset.")
    screenshot(page, "dataset-recommendations")

    first.get_by_test_id("launch-this").click()
    expect(page.get_by_test_id("clone-notice")).to_be_visible()
    assert float(page.input_value("#launch-form [name=lr]")) == 0.01
    assert page.input_value("#launch-form [name=batch_size]") == "8"
    launch_panel = page.get_by_test_id("recommendations")
    expect(launch_panel).to_have_attribute("data-state", "history", timeout=20_000)
    choose_dataset(page, "#launch-dataset", "digits")  # the panel follows the chosen dataset
    expect(launch_panel).to_have_attribute("data-dataset", str(api["datasets"]["digits"]))
    expect(launch_panel).not_to_have_attribute("data-state", "loading", timeout=20_000)
    choose_dataset(page, "#launch-dataset", "iris")
    expect(launch_panel).to_have_attribute("data-state", "history", timeout=20_000)
    screenshot(page, "launch-recommendations")

    page.get_by_test_id("recommendations-sweep").click()
    expect(page.get_by_test_id("sweep-warm-start")).to_be_visible()
    lines = [json.loads(line) for line in page.input_value("[data-testid=sweep-warm-start]").splitlines() if line]
    assert {"optimizer": "adam", "lr": 0.01, "batch_size": 8} in lines, lines  # zero or unused settings left out
    screenshot(page, "sweep-from-recommendations")
