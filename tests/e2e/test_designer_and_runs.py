"""Design a CNN for the seeded digits dataset with the layer builder, see the live shapes and an error, save it,
launch a short run with it and watch it succeed while its charts grow."""
import re
import time

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.e2e.test_shell import sign_in

pytestmark = pytest.mark.e2e
RUN_TIMEOUT_S = 300


def choose_dataset(page, select: str, name: str) -> None:
    value = page.evaluate("""([select, name]) => [...document.querySelector(select).options]
        .find((option) => option.textContent.trim().startsWith(name + " ")).value""", [select, name])
    page.select_option(select, value)


def layer(page, number: int):
    return page.get_by_test_id("layer-row").nth(number - 1)


def design_the_cnn(page, stack) -> None:
    page.goto(f"{stack.url}/models/")
    choose_dataset(page, "#design-dataset", "digits")
    # The starting point for 1x8x8 images: the CIFAR tutorial CNN, padded so only the pools shrink the image.
    expect(page.get_by_test_id("layer-row")).to_have_count(12)
    expect(page.get_by_test_id("check-status")).to_contain_text("fits", timeout=30_000)
    expect(page.locator("#shape-table tr[data-layer='7'] td").nth(2)).to_have_text("64")
    expect(page.get_by_test_id("total-parameters")).to_have_text(re.compile(r"^[\d,]+$"))

    # A wrong layer: the check names it, says the fix, and marks its row.
    layer(page, 8).locator("input[name=param-in_features]").fill("400")
    expect(page.get_by_test_id("check-error")).to_contain_text("Layer 8 Linear expects 400 inputs but receives 64: set in_features to 64")
    expect(layer(page, 8)).to_have_class(re.compile("has-error"))
    expect(page.get_by_test_id("error-row")).to_be_visible()
    screenshot(page, "designer-error")
    layer(page, 8).locator("input[name=param-in_features]").fill("")
    expect(page.get_by_test_id("check-status")).to_contain_text("fits")
    expect(layer(page, 8)).not_to_have_class(re.compile("has-error"))

    # Add a Dropout (it lands last, so the design ends with it: a warning), then move it before the head.
    page.get_by_test_id("add-layer-type").select_option("Dropout")
    page.get_by_test_id("add-layer").click()
    expect(page.get_by_test_id("layer-row")).to_have_count(13)
    expect(page.locator("#check-warnings")).to_contain_text("ends with layer 13 Dropout")
    layer(page, 13).get_by_role("button", name=re.compile("Move up")).click()
    expect(layer(page, 12).locator("select.layer-type")).to_have_value("Dropout")
    expect(page.locator("#check-warnings")).to_be_empty()
    expect(page.get_by_test_id("check-status")).to_contain_text("fits")

    # A preset is checked the same way (built on torch's meta device), each part with its shape.
    page.get_by_test_id("mode-preset").check()
    page.get_by_test_id("design-preset").select_option("resnet18")
    expect(page.get_by_test_id("check-status")).to_contain_text("fits", timeout=60_000)
    expect(page.locator("#shape-table tbody")).to_contain_text("layer4")
    screenshot(page, "designer-preset")
    page.get_by_test_id("mode-layers").check()
    expect(page.get_by_test_id("layer-row")).to_have_count(13)
    expect(page.get_by_test_id("check-status")).to_contain_text("fits")

    page.get_by_test_id("design-name").fill("digits-cnn-e2e")
    page.get_by_test_id("design-save").click()
    expect(page.get_by_test_id("save-result")).to_contain_text("saved digits-cnn-e2e v1")
    expect(page.locator("tr[data-design='digits-cnn-e2e']")).to_be_visible()
    screenshot(page, "designer")


def watch_until_final(page) -> tuple[str, list[int]]:
    """The run's status once final, and the distinct sizes its loss chart went through."""
    sizes: list[int] = []
    deadline = time.monotonic() + RUN_TIMEOUT_S
    status = ""
    while time.monotonic() < deadline:
        status = page.get_by_test_id("run-status").get_attribute("data-status")
        points = page.evaluate("() => Number(document.getElementById('chart-loss')?.dataset.points || 0)")
        if points and (not sizes or sizes[-1] != points):
            sizes.append(points)
        if status in ("succeeded", "failed", "cancelled") and page.get_by_test_id("live-state").text_content() == "finished":
            return status, sizes
        page.wait_for_timeout(200)
    raise AssertionError(f"the run did not finish in {RUN_TIMEOUT_S} s (status {status})")


def test_design_a_cnn_for_digits_launch_it_and_watch_it_succeed(page, stack):
    sign_in(page, stack)
    design_the_cnn(page, stack)

    page.get_by_test_id("train-saved").click()
    expect(page.get_by_test_id("launch-model")).to_have_value(re.compile(r"^design:\d+$"))
    expect(page.get_by_test_id("launch-model").locator("option:checked")).to_contain_text("digits-cnn-e2e v1")
    expect(page.get_by_test_id("launch-dataset").locator("option:checked")).to_contain_text("digits")
    page.fill("input[name=epochs]", "3")
    page.fill("input[name=batch_size]", "16")
    page.fill("input[name=name]", "e2e digits cnn")
    screenshot(page, "launch")
    # A learning rate of 0 is refused next to its field, with the form kept as it was.
    page.fill("input[name=lr]", "0")
    page.get_by_test_id("launch-submit").click()
    expect(page.get_by_test_id("error-lr")).to_contain_text("Learning rate must be greater than 0")
    expect(page.locator("input[name=epochs]")).to_have_value("3")
    page.get_by_test_id("launch-advanced").locator("summary").click()
    screenshot(page, "launch-error")
    page.fill("input[name=lr]", "0.001")
    page.get_by_test_id("launch-submit").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+/$"), timeout=60_000)

    status, sizes = watch_until_final(page)
    log = page.get_by_test_id("log-tail").text_content()
    assert status == "succeeded", f"{status}: {page.locator('#run-error').text_content() if page.locator('#run-error').count() else log}"
    assert len(sizes) >= 2 and sizes == sorted(sizes), f"the loss chart did not grow live: {sizes}"
    assert page.evaluate("() => window.trainyardRun.charts.extensions") >= 1
    expect(page.get_by_test_id("chart-accuracy")).to_be_visible()
    expect(page.locator("[data-testid=run-summary] tr[data-metric=test_accuracy]")).to_be_visible(timeout=20_000)
    expect(page.get_by_test_id("run-checkpoints")).to_be_visible()
    expect(page.get_by_test_id("progress-text")).to_contain_text("step")
    expect(page.get_by_test_id("confusion")).to_be_visible()
    assert page.get_by_test_id("run-resume").is_hidden() and page.get_by_test_id("run-cancel").is_hidden()
    page.locator("#chart-controls input[name=axis][value=epoch]").check()
    expect(page.locator("#chart-loss .xtitle")).to_have_text("epoch")
    screenshot(page, "run-succeeded")

    # Reloaded, the finished run's page is drawn from SQL and looks the same.
    page.reload()
    expect(page.get_by_test_id("live-state")).to_have_text("finished")
    expect(page.get_by_test_id("chart-loss")).to_have_attribute("data-points", re.compile(r"^[1-9]\d*$"))
    expect(page.get_by_test_id("log-tail")).not_to_be_empty()

    page.get_by_test_id("run-clone").click()
    expect(page.get_by_test_id("clone-notice")).to_be_visible()
    expect(page.locator("input[name=epochs]")).to_have_value("3")

    page.goto(f"{stack.url}/models/")
    page.locator("tr[data-design='digits-cnn-e2e'] a").first.click()
    expect(page.get_by_test_id("design-runs")).to_contain_text("e2e digits cnn")
    expect(page.get_by_test_id("design-layers")).to_be_visible()
    screenshot(page, "design-detail")

    page.goto(f"{stack.url}/runs/")
    expect(page.locator("tr[data-status=succeeded]").first).to_contain_text("e2e digits cnn")
    expect(page.locator("tr[data-status=succeeded]").first).to_contain_text("test_accuracy")
    screenshot(page, "runs-list")


def test_cancel_and_resume_from_the_run_page(page, stack):
    sign_in(page, stack)
    page.goto(f"{stack.url}/runs/new/")
    choose_dataset(page, "#launch-dataset", "digits")
    expect(page.get_by_test_id("launch-model")).to_have_value("preset:small_cnn")  # suggested for images
    page.fill("input[name=epochs]", "50")
    page.fill("input[name=name]", "to cancel")
    page.get_by_test_id("launch-submit").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+/$"), timeout=60_000)
    page.get_by_test_id("run-cancel").click()
    expect(page.get_by_test_id("run-status")).to_have_attribute("data-status", "cancelled", timeout=120_000)
    expect(page.get_by_test_id("run-resume")).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("run-cancel")).to_be_hidden()
    screenshot(page, "run-cancelled")
    page.get_by_test_id("run-resume").click()
    expect(page.get_by_test_id("run-status")).to_have_attribute("data-status", re.compile("queued|starting|running"))
    expect(page.get_by_test_id("run-cancel")).to_be_visible()
    page.get_by_test_id("run-cancel").click()  # leave nothing training
    expect(page.get_by_test_id("run-status")).to_have_attribute("data-status", "cancelled", timeout=120_000)
