"""A queued run's place in its queue (priority, then age) and its estimated start, in the API and on the
run page."""
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from trainer_app.models import Queue, Run, RunStatus, Worker

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite_ok]


@pytest.fixture
def queue():
    queue, _ = Queue.objects.get_or_create(name="cpu")
    return queue


def queued(run_factory, *, priority=5, age_s=0):
    run = run_factory(priority=priority)
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(seconds=age_s))
    return run


def test_runs_ahead_come_by_priority_then_age(api_client, run_factory, queue):
    oldest, newer = queued(run_factory, age_s=300), queued(run_factory, age_s=100)
    urgent = queued(run_factory, priority=1, age_s=10)
    running = run_factory(status=RunStatus.RUNNING)
    api_client.force_authenticate(run_factory.owner)
    positions = {run.pk: api_client.get(f"/api/runs/{run.pk}/").json()["queue_position"]
                 for run in (oldest, newer, urgent, running)}
    assert positions == {urgent.pk: 1, oldest.pk: 2, newer.pk: 3, running.pk: None}


def test_without_history_the_estimated_start_is_unknown_and_the_page_says_why(api_client, client, run_factory,
                                                                              queue):
    run = queued(run_factory)
    api_client.force_authenticate(run_factory.owner)
    body = api_client.get(f"/api/runs/{run.pk}/").json()
    assert (body["queue_position"], body["estimated_start"]) == (1, None)
    client.force_login(run_factory.owner)
    page = client.get(reverse("run-detail", args=[run.pk])).content.decode()
    assert 'data-testid="run-queue-place"' in page
    assert "#1 in queue cpu · start unknown: no run has finished on this queue yet" in page


def test_the_estimate_is_the_average_duration_times_runs_ahead_over_worker_slots(api_client, client, run_factory,
                                                                               queue):
    now = timezone.now()
    for seconds in (600, 1200):  # 15 minutes on average
        finished = run_factory(status=RunStatus.SUCCEEDED)
        Run.objects.filter(pk=finished.pk).update(started_at=now - timedelta(hours=1),
                                                  finished_at=now - timedelta(hours=1) + timedelta(seconds=seconds))
    Worker.objects.create(name="cpu@a", hostname="a", queues=["cpu"], software={"concurrency": 2}, started_at=now,
                          last_heartbeat=now)
    run_factory(status=RunStatus.RUNNING)
    queued(run_factory, age_s=60)
    mine = queued(run_factory)  # one queued and one running before it, 2 slots: 900 s × 2 / 2
    api_client.force_authenticate(run_factory.owner)
    body = api_client.get(f"/api/runs/{mine.pk}/").json()
    assert body["queue_position"] == 2
    wait = (parse_datetime(body["estimated_start"]) - timezone.now()).total_seconds()
    assert 880 <= wait <= 900
    client.force_login(run_factory.owner)
    page = client.get(reverse("run-detail", args=[mine.pk])).content.decode()
    assert "#2 in queue cpu · starts in about 14" in page  # timeuntil: "14 minutes"
    Queue.objects.filter(pk=queue.pk).update(paused=True)
    assert api_client.get(f"/api/runs/{mine.pk}/").json()["estimated_start"] is None


def test_a_running_run_shows_no_queue_place(client, run_factory, queue):
    run = run_factory(status=RunStatus.RUNNING)
    client.force_login(run_factory.owner)
    assert 'data-testid="run-queue-place"' not in client.get(reverse("run-detail", args=[run.pk])).content.decode()
