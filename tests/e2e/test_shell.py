"""Log in, open every navigation entry and the status page, create a project through htmx, log out."""
import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot

pytestmark = pytest.mark.e2e
NAVIGATION = ["datasets", "models", "runs", "sweeps", "leaderboards", "graph", "projects", "fleet", "status"]


def sign_in(page, stack, password="e2e-admin-pass-1"):
    page.goto(f"{stack.url}/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", password)
    page.click("button[type=submit]")


def test_wrong_password_shows_an_error_on_the_login_page(page, stack):
    sign_in(page, stack, password="not-the-password")
    expect(page.get_by_test_id("login-error")).to_contain_text("Wrong user name or password")
    screenshot(page, "login-error")


def test_every_navigation_entry_and_the_status_page(page, stack):
    page.goto(f"{stack.url}/login/")
    screenshot(page, "login")
    sign_in(page, stack)
    expect(page.get_by_test_id("current-user")).to_contain_text("admin")
    for name in NAVIGATION:
        page.click(f"nav a[data-nav='{name}']")
        expect(page).to_have_url(re.compile(f"/{name}/$"))
        expect(page.locator(f"nav a[data-nav='{name}']")).to_have_class(re.compile("active"))
        assert page.locator("main h1").inner_text().strip()
        screenshot(page, f"nav-{name}")
    # The status page refreshes itself every 5 s; the worker registers within seconds of start.
    page.goto(f"{stack.url}/status/")
    for component in ["database", "broker", "graph", "workers"]:
        expect(page.locator(f"tr[data-component='{component}'] [data-state='ok']")).to_be_visible(timeout=60_000)
    screenshot(page, "status")


def test_an_htmx_post_carries_the_csrf_token_and_creates_a_project(page, stack):
    sign_in(page, stack)
    page.goto(f"{stack.url}/projects/")
    page.fill("form[data-testid='project-create'] input[name=name]", "browser-made")
    page.click("form[data-testid='project-create'] button")
    expect(page.locator("section[data-project='browser-made']")).to_be_visible()
    page.fill("form[data-testid='project-create'] input[name=name]", "browser-made")
    page.click("form[data-testid='project-create'] button")
    expect(page.locator("#form-errors")).to_contain_text("already exists")
    screenshot(page, "projects")


def test_a_script_post_without_the_token_is_refused(page, stack):
    sign_in(page, stack)
    expect(page.get_by_test_id("current-user")).to_be_visible()
    page.wait_for_function("window.trainyard && window.trainyard.apiFetch")  # the module has run
    statuses = page.evaluate("""async () => {
        const body = new URLSearchParams({name: "sneaky"});
        const bare = await fetch("/projects/new/", {method: "POST", body});
        const withToken = await window.trainyard.apiFetch("/api/projects/", {
            method: "POST", body: JSON.stringify({name: "scripted"}), headers: {"Content-Type": "application/json"}});
        return [bare.status, withToken.status];
    }""")
    assert statuses == [403, 201]


def test_narrow_screens_fold_the_navigation_away(browser, stack):
    context = browser.new_context(viewport={"width": 390, "height": 800})
    page = context.new_page()
    sign_in(page, stack)
    expect(page.locator("#sidebar")).not_to_be_in_viewport()
    page.click(".nav-toggle")
    expect(page.locator("#sidebar")).to_be_in_viewport()
    screenshot(page, "mobile-navigation")
    context.close()


def test_sign_out_returns_to_the_login_page(page, stack):
    sign_in(page, stack)
    page.get_by_test_id("logout").click()
    expect(page).to_have_url(re.compile("/login/"))
    page.goto(f"{stack.url}/runs/")
    expect(page).to_have_url(re.compile("/login/"))
