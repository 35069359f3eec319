"""Three seeds of one configuration: compare them in the browser, then see them as one leaderboard row."""
import re
import time

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.e2e.test_shell import sign_in

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def three_seeds(stack):
    session = requests.Session()
    token = session.post(f"{stack.url}/api/auth/token/", json={"username": "admin", "password": "e2e-admin-pass-1"},
                         timeout=30).json()["token"]
    session.headers["Authorization"] = f"Token {token}"
    project = session.get(f"{stack.url}/api/projects/", timeout=30).json()[0]["id"]
    wine = next(d for d in session.get(f"{stack.url}/api/datasets/", timeout=30).json() if d["name"] == "wine")
    design = session.post(f"{stack.url}/api/models/", json={"project": project, "name": "wine-mlp-e2e",
                                                            "spec": {"preset": "mlp"}}, timeout=30).json()["id"]
    ids = []
    for seed in (0, 1, 2):
        response = session.post(f"{stack.url}/api/runs/", json={
            "project": project, "dataset": wine["id"], "model": design, "queue": "cpu", "name": f"wine seed {seed}",
            "config": {"optimizer": "adam", "lr": 0.01, "batch_size": 32, "epochs": 2, "seed": seed}}, timeout=30)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        statuses = [session.get(f"{stack.url}/api/runs/{run_id}/", timeout=30).json()["status"] for run_id in ids]
        if all(status in ("succeeded", "failed", "cancelled") for status in statuses):
            break
        time.sleep(1)
    assert statuses == ["succeeded"] * 3, statuses
    return {"ids": ids, "wine": wine["id"]}


def test_compare_three_runs(page, stack, three_seeds):
    sign_in(page, stack)
    page.goto(f"{stack.url}/runs/")
    for run_id in three_seeds["ids"]:
        page.check(f".compare-box[value='{run_id}']")
    page.get_by_test_id("compare-selected").click()
    expect(page).to_have_url(re.compile(r"/runs/compare/\?runs="))
    expect(page.locator("#compare[data-loaded='true']")).to_be_attached(timeout=20_000)
    expect(page.get_by_test_id("compare-curves").locator(".scatterlayer .trace")).to_have_count(3)
    expect(page.get_by_test_id("compare-table").locator("tr[data-param='seed']")).to_be_visible()
    expect(page.get_by_test_id("compare-table").locator("tr[data-param='lr']")).to_have_count(0)  # identical: hidden
    page.select_option("[data-testid=compare-metric]", "val_accuracy")
    expect(page).to_have_url(re.compile(r"metric=val_accuracy"))
    screenshot(page, "compare")


def test_the_seeds_are_one_leaderboard_row(page, stack, three_seeds):
    sign_in(page, stack)
    page.goto(f"{stack.url}/leaderboards/?dataset={three_seeds['wine']}&metric=test_accuracy")
    row = page.get_by_test_id("leaderboard").locator("tr[data-rank='1']")
    expect(row).to_contain_text("wine-mlp-e2e")
    expect(row.locator("td").nth(2)).to_have_text("3")
    expect(row).to_contain_text("±")
    screenshot(page, "leaderboard")


def test_the_runs_list_tags_stars_and_filters_the_seeds(page, stack, three_seeds):
    first, second, third = three_seeds["ids"]
    sign_in(page, stack)
    page.goto(f"{stack.url}/runs/")
    page.check(f".compare-box[value='{first}']")
    page.check(f".compare-box[value='{second}']")
    expect(page.get_by_test_id("bulk-count")).to_have_text("2 selected")
    page.get_by_test_id("bulk-tag").fill("e2e-pair")
    page.get_by_test_id("bulk-action-tag").click()
    expect(page.get_by_test_id("bulk-message")).to_contain_text("2 updated")
    expect(page.locator(f"tr[data-run='{second}'] [data-testid=run-tags]")).to_contain_text("e2e-pair")  # refreshed
    star = page.locator(f"tr[data-run='{third}'] [data-testid=star-toggle]")
    star.click()
    expect(star).to_have_attribute("aria-pressed", "true")
    screenshot(page, "runs-bulk-tagged")

    page.select_option("[data-testid=filter-status]", "succeeded")  # a choice applies at once
    expect(page).to_have_url(re.compile(r"[?&]status=succeeded"))
    page.select_option("[data-testid=filter-tag]", "e2e-pair")
    expect(page).to_have_url(re.compile(r"[?&]tag=e2e-pair"))
    assert "dataset=" not in page.url  # empty fields stay out of a shared link
    expect(page.locator("tr[data-run]")).to_have_count(2)
    expect(page.locator(f"tr[data-run='{third}']")).to_have_count(0)
    screenshot(page, "runs-filtered")
    page.get_by_test_id("clear-filters").click()
    page.check("[data-testid=filter-starred]")
    expect(page).to_have_url(re.compile(r"[?&]starred=true"))
    expect(page.locator(f"tr[data-run='{third}']")).to_be_visible()
    expect(page.locator(f"tr[data-run='{first}']")).to_have_count(0)

    page.goto(f"{stack.url}/runs/{third}/")
    page.get_by_test_id("run-tags-input").fill("solo, e2e")
    page.get_by_test_id("run-notes-input").fill("the third seed\nchecked by hand")
    page.get_by_test_id("run-notes-save").click()
    expect(page.get_by_test_id("run-notes-status")).to_have_text("Saved.")
    page.goto(f"{stack.url}/runs/?tag=solo")
    expect(page.locator(f"tr[data-run='{third}'] [data-testid=run-notes]")).to_have_text("the third seed")
