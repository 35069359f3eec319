"""Launch a short run, then find it in the knowledge graph: search, expand it to its dataset version and
checkpoint, open the side panel with a link to its page, and run a console query."""
import re
import time

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.e2e.test_designer_and_runs import choose_dataset
from tests.e2e.test_shell import sign_in

pytestmark = pytest.mark.e2e
RUN_NAME = "kg lineage run"


def canvas_labels(page) -> set:
    return set(page.evaluate("() => window.trainyardGraph.nodes().map((node) => node.data('label'))"))


def test_search_a_run_expand_it_to_its_dataset_and_checkpoint_and_query_the_console(page, stack):
    sign_in(page, stack)
    page.goto(f"{stack.url}/runs/new/")
    choose_dataset(page, "#launch-dataset", "digits")
    page.fill("input[name=epochs]", "1")
    page.fill("input[name=name]", RUN_NAME)
    page.get_by_test_id("launch-submit").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+/$"), timeout=60_000)
    run_id = re.search(r"/runs/(\d+)/$", page.url).group(1)
    expect(page.get_by_test_id("run-status")).to_have_attribute("data-status", "succeeded", timeout=300_000)

    page.goto(f"{stack.url}/graph/")
    expect(page.get_by_test_id("graph-canvas")).to_have_attribute("data-ready", "true")
    result = page.locator(f"#graph-results button[data-node='run:{run_id}']")
    deadline = time.monotonic() + 60  # the sync runs every 2 s; the checkpoint arrives with the run's end
    while True:
        page.fill("#graph-search input[name=q]", RUN_NAME)
        page.click("#graph-search button[type=submit]")
        page.wait_for_timeout(1000)
        if result.count():
            result.click()
            page.wait_for_timeout(500)
            if {"Run", "DatasetVersion", "Checkpoint", "ModelDesign", "Concept"} <= canvas_labels(page):
                break
        assert time.monotonic() < deadline, f"the graph did not show run {run_id} with its lineage"
        page.get_by_role("button", name="Clear").click()
    expect(page.get_by_test_id("graph-panel")).to_contain_text(RUN_NAME)
    expect(page.get_by_test_id("graph-open-page")).to_have_attribute("href", f"/runs/{run_id}/")
    screenshot(page, "graph-run-expanded")

    page.get_by_test_id("graph-lineage").click()
    expect(page.get_by_test_id("graph-canvas")).to_be_visible()
    page.wait_for_function("() => window.trainyardGraph.edges('.lineage').length >= 3")
    screenshot(page, "graph-lineage")
    version = page.evaluate("() => window.trainyardGraph.nodes().filter((n) => n.data('label') === 'DatasetVersion')"
                            "[0].id()")
    page.evaluate(f"() => window.trainyardGraph.getElementById('{version}').emit('tap')")
    page.click("#graph-question-list button[data-question='runs-on-dataset']")
    expect(page.get_by_test_id("graph-answer")).to_contain_text(RUN_NAME)

    page.fill("#graph-console-form textarea", f"MATCH (r:Run {{key: 'run:{run_id}'}})-[:PRODUCED]->(c:Checkpoint) "
                                              "RETURN r.name AS run, count(c) AS checkpoints")
    page.click("#graph-console-form button[type=submit]")
    expect(page.get_by_test_id("graph-console-result")).to_contain_text(RUN_NAME)
    page.fill("#graph-console-form textarea", "MATCH (n) DETACH DELETE n")
    page.click("#graph-console-form button[type=submit]")
    expect(page.get_by_test_id("graph-console-result").locator(".alert.error")).to_be_visible()
    screenshot(page, "graph-console")
