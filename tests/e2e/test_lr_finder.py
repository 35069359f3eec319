"""On the launch form: settings suggested from the data with their reasons, then the learning-rate finder run
for real, its curve drawn, and its suggestion taken into the form."""
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.e2e.test_designer_and_runs import choose_dataset
from tests.e2e.test_shell import sign_in

pytestmark = pytest.mark.e2e


def test_suggest_settings_then_find_the_learning_rate_and_take_it(page, stack):
    sign_in(page, stack)
    projects = page.request.get(f"{stack.url}/api/projects/").json()
    demo = next(project["id"] for project in projects if project["name"] == "demo")
    page.goto(f"{stack.url}/runs/new/?project={demo}")  # other tests add projects of their own
    choose_dataset(page, "#launch-dataset", "digits")
    page.select_option("#launch-model", "preset:small_cnn")
    page.get_by_test_id("suggest-settings").click()
    reasons = page.get_by_test_id("suggest-reasons")
    expect(reasons).to_contain_text("Batch size 32")
    expect(reasons).to_contain_text("optimizer steps")
    assert page.input_value("#launch-form [name=batch_size]") == "32"

    page.get_by_test_id("find-lr").click()
    expect(page.get_by_test_id("lr-finder-status")).to_contain_text("Done", timeout=120_000)
    expect(page.locator("#lr-finder-chart .main-svg").first).to_be_visible()
    suggested = page.get_by_test_id("lr-finder-value").inner_text()
    assert 1e-5 <= float(suggested) <= 0.1
    page.get_by_test_id("lr-finder-use").click()
    assert float(page.input_value("#launch-form [name=lr]")) == float(suggested)
    screenshot(page, "lr-finder-taken")
