"""As an admin: from the fleet page to a GPU worker's page, whose charts draw each GPU's utilisation and memory
over time from the history API, and whose span buttons redraw them."""
import re
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.e2e.test_shell import sign_in
from tests.stack import REPO

pytestmark = pytest.mark.e2e

SEED = """
from datetime import timedelta
from django.utils import timezone
from trainer_app.models import Worker, WorkerGpuMinute
now = timezone.now().replace(second=0, microsecond=0)
gpus = [{"index": i, "name": "NVIDIA H200", "memory_total_mb": 143771, "memory_used_mb": 1000, "utilization": 50,
         "temperature_c": 40} for i in range(2)]
worker, _ = Worker.objects.update_or_create(name="gpu@e2e-history", defaults={
    "hostname": "gpu-node", "status": "offline", "queues": ["gpu"], "gpus": gpus, "started_at": now,
    "last_heartbeat": now})
WorkerGpuMinute.objects.bulk_create([
    WorkerGpuMinute(worker=worker, gpu_index=i, minute=now - timedelta(minutes=m), samples=12,
                    utilization_mean=(m * (i + 1)) % 100, utilization_max=100, memory_used_mb_max=1000 + m)
    for i in range(2) for m in range(1, 600)], ignore_conflicts=True)
"""


def test_a_gpu_workers_page_draws_its_history(page, stack):
    subprocess.run([sys.executable, "manage.py", "shell", "-c", SEED], cwd=REPO, env=stack.env, check=True,
                   capture_output=True, timeout=120)
    sign_in(page, stack)
    page.goto(f"{stack.url}/fleet/")
    page.locator('[data-worker="gpu@e2e-history"]').get_by_test_id("worker-link").click()
    expect(page).to_have_url(re.compile(r"/fleet/workers/\d+/$"))
    for gpu in (0, 1):
        expect(page.get_by_test_id(f"gpu-chart-{gpu}").locator(".main-svg").first).to_be_visible()
    expect(page.get_by_test_id("gpu-history-note")).to_contain_text("Last 24 h, one point per 2 minutes")
    page.get_by_test_id("span-1").click()
    expect(page.get_by_test_id("gpu-history-note")).to_contain_text("Last 1 h, one point per minute")
    expect(page.get_by_test_id("gpu-chart-1").locator(".main-svg").first).to_be_visible()
    screenshot(page, "fleet-worker-history")
