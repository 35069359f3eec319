"""Upload an image ZIP and a CSV from the browser (the drop zone's file input) and see their previews."""
import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.e2e.test_shell import sign_in
from tests.integration.test_datasets_api import image_zip, wine_csv

pytestmark = pytest.mark.e2e


def upload_from_the_page(page, stack, tmp_path, filename: str, content: bytes, name: str, **fields):
    path = tmp_path / filename
    path.write_bytes(content)
    page.goto(f"{stack.url}/datasets/")
    page.set_input_files("#upload-file", str(path))
    expect(page.locator("#chosen-file")).to_contain_text(filename)
    page.fill("#upload-name", name)
    for field, value in fields.items():
        page.fill(f"input[name={field}]", value)
    page.click("#upload-submit")
    expect(page.get_by_test_id("upload-status")).to_contain_text("is being processed", timeout=30_000)
    row = page.locator(f"tr[data-dataset='{name}']")
    expect(row.locator("[data-status='ready']")).to_be_visible(timeout=60_000)
    row.locator("a").first.click()
    expect(page).to_have_url(re.compile(r"/datasets/\d+/$"))


def test_an_image_zip_uploaded_in_the_browser_shows_samples_per_class(page, stack, tmp_path):
    sign_in(page, stack)
    upload_from_the_page(page, stack, tmp_path, "pets.zip", image_zip(), "pets")
    expect(page.get_by_test_id("dataset-status")).to_have_text("ready")
    expect(page.get_by_test_id("image-preview").locator("img").first).to_be_visible()
    assert page.get_by_test_id("image-preview").locator("img").count() >= 2
    expect(page.get_by_test_id("class-balance").locator(".main-svg").first).to_be_attached(timeout=15_000)
    assert page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    screenshot(page, "dataset-images")


def test_a_csv_uploaded_in_the_browser_shows_rows_and_column_statistics(page, stack, tmp_path):
    sign_in(page, stack)
    upload_from_the_page(page, stack, tmp_path, "wine.csv", wine_csv(), "wine-upload", target_column="target")
    expect(page.get_by_test_id("table-preview")).to_contain_text("alcohol")
    expect(page.get_by_test_id("feature-stats")).to_contain_text("alcohol")
    expect(page.get_by_test_id("dataset-facts")).to_contain_text("178")
    screenshot(page, "dataset-table")


def test_a_bad_file_shows_why_it_failed(page, stack, tmp_path):
    sign_in(page, stack)
    path = tmp_path / "broken.csv"
    path.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(100))
    page.goto(f"{stack.url}/datasets/")
    page.set_input_files("#upload-file", str(path))
    page.fill("#upload-name", "broken")
    page.click("#upload-submit")
    row = page.locator("tr[data-dataset='broken']")
    expect(row.locator("[data-status='failed']")).to_be_visible(timeout=60_000)
    row.locator("a").first.click()
    expect(page.get_by_test_id("dataset-error")).not_to_be_empty()
    screenshot(page, "dataset-failed")
