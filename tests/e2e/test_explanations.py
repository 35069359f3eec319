"""Explanations where choices are made: on the launch form, hovering an option's ⓘ shows what it is and when to
use it, the chosen optimizer is explained under its select, and the ⓘ leads to the concept's page; the sweep form
explains the chosen sampler and each search-space parameter."""
import pytest
from playwright.sync_api import expect

from kg_app.explanations import EXPLANATIONS
from tests.e2e.conftest import screenshot
from tests.e2e.test_shell import sign_in

pytestmark = pytest.mark.e2e


def test_hover_a_training_option_read_its_explanation_and_open_its_concept(page, stack):
    sign_in(page, stack)
    page.goto(f"{stack.url}/runs/new/")
    tooltip = page.get_by_test_id("explain-tooltip")

    # The optimizer: its ⓘ explains optimizers; the line under the select explains the one chosen.
    page.locator("[data-field=optimizer] .field-label a.explain").hover()
    expect(tooltip).to_be_visible()
    expect(tooltip).to_contain_text(EXPLANATIONS["model-optimisation"]["what"])
    expect(tooltip).to_contain_text("When to use it:")
    expect(page.get_by_test_id("option-explain-optimizer")).to_contain_text("Adaptive moment estimation")
    page.select_option("#launch-form [name=optimizer]", "sgd")
    expect(page.get_by_test_id("option-explain-optimizer")).to_contain_text("Stochastic gradient descent")
    screenshot(page, "explain-optimizer")

    # Weight decay, under Advanced: hover, read, then follow the ⓘ to the concept's page.
    page.get_by_test_id("launch-advanced").locator("summary").click()
    info = page.locator("[data-field=weight_decay] .field-label a.explain")
    info.hover()
    expect(tooltip).to_contain_text("Weight decay")
    expect(tooltip).to_contain_text(EXPLANATIONS["weight-decay"]["what"])
    screenshot(page, "explain-weight-decay")
    info.click()
    expect(page).to_have_url(f"{stack.url}/concepts/weight-decay/")
    expect(page.get_by_test_id("concept-name")).to_have_text("Weight decay")
    expect(page.get_by_test_id("explanation-typical")).to_contain_text(EXPLANATIONS["weight-decay"]["typical"])
    expect(page.get_by_test_id("concept-graph-link")).to_have_attribute("href", "/graph/?node=concept%3Aweight-decay")
    expect(page.get_by_test_id("concept-runs")).to_be_visible()  # runs that applied it, or how to try it
    screenshot(page, "concept-weight-decay")


def test_the_sweep_form_explains_the_sampler_and_each_parameter(page, stack):
    sign_in(page, stack)
    page.goto(f"{stack.url}/sweeps/new/")
    page.get_by_test_id("sweep-sampler").select_option("grid")
    expect(page.get_by_test_id("sampler-help")).to_contain_text("every combination")
    expect(page.get_by_test_id("sampler-help").locator("a.explain")).to_have_attribute("href", "/concepts/grid-search/")
    row = page.get_by_test_id("space-row").first
    expect(row.get_by_test_id("param-explain").locator("a.explain")).to_have_attribute("href",
                                                                                       "/concepts/learning-rate/")
    row.get_by_test_id("param-name").fill("weight_decay")
    expect(row.get_by_test_id("param-explain").locator("a.explain")).to_have_attribute("href",
                                                                                       "/concepts/weight-decay/")
    row.get_by_test_id("param-explain").locator("a.explain").hover()
    expect(page.get_by_test_id("explain-tooltip")).to_contain_text(EXPLANATIONS["weight-decay"]["what"])
    screenshot(page, "explain-sweep-form")


def test_the_designer_and_the_upload_form_explain_their_options(page, stack):
    sign_in(page, stack)
    page.goto(f"{stack.url}/models/")
    first = page.get_by_test_id("layer-row").first
    expect(first.locator(".option-explain-icon a.explain")).to_have_attribute("href", "/concepts/mlp/")
    first.get_by_test_id("layer-type").select_option("Dropout")
    row = page.get_by_test_id("layer-row").first  # the designer draws the rows again
    expect(row.locator(".option-explain-icon a.explain")).to_have_attribute("href", "/concepts/dropout/")
    row.locator(".option-explain-icon a.explain").hover()
    expect(page.get_by_test_id("explain-tooltip")).to_contain_text(EXPLANATIONS["dropout"]["what"])
    screenshot(page, "explain-designer")

    page.goto(f"{stack.url}/datasets/")
    page.select_option("#upload-form [name=task]", "regression")
    expect(page.get_by_test_id("option-explain-task")).to_contain_text("Predicting a number")
    screenshot(page, "explain-upload")
