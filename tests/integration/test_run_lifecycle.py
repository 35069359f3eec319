"""Run liveness is a lease in SQL: claims are conditional, a live delivery is never doubled, the
reaper re-queues lost runs and fails a run lost three times; the persister never duplicates a point."""
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from trainer_app.models import MetricPoint, Run, RunStatus
from trainer_app.services import runs as run_services
from trainer_app.services.metrics import metrics_persist
from trainer_app.streams import redis_client, run_stream_key

pytestmark = [pytest.mark.django_db]


def test_only_one_delivery_claims_a_queued_run(run_factory):
    run = run_factory()
    assert run_services.run_claim(run_id=run.pk, owner="w1:a") is True
    assert run_services.run_claim(run_id=run.pk, owner="w2:b") is False  # redelivered while alive: nothing
    run.refresh_from_db()
    assert (run.status, run.lease_owner, run.deliveries) == (RunStatus.STARTING, "w1:a", 1)


def test_a_cancelled_run_is_never_claimed(run_factory):
    run = run_factory()
    run_services.run_cancel(run=run)
    assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED
    assert run_services.run_claim(run_id=run.pk, owner="w1:a") is False


def test_heartbeat_renews_only_the_owners_lease_and_relays_a_cancel(run_factory):
    run = run_factory()
    run_services.run_claim(run_id=run.pk, owner="w1:a")
    assert run_services.run_heartbeat(run_id=run.pk, owner="w1:a") == (True, False)
    assert run_services.run_heartbeat(run_id=run.pk, owner="intruder") == (False, False)
    run_services.run_cancel(run=Run.objects.get(pk=run.pk))
    assert run_services.run_heartbeat(run_id=run.pk, owner="w1:a") == (True, True)


def test_only_the_owner_records_the_outcome(run_factory):
    run = run_factory()
    run_services.run_claim(run_id=run.pk, owner="w1:a")
    assert run_services.run_finish(run_id=run.pk, owner="other", status=RunStatus.SUCCEEDED) is False
    assert run_services.run_finish(run_id=run.pk, owner="w1:a", status=RunStatus.FAILED, error="boom") is True
    run.refresh_from_db()
    assert (run.status, run.error, run.lease_owner) == (RunStatus.FAILED, "boom", "")


def test_the_reaper_requeues_an_expired_lease_and_fails_the_third_loss(run_factory, settings):
    run = run_factory()
    stale = timezone.now() - timedelta(seconds=settings.RUN_LEASE_SECONDS + 5)
    for delivery in (1, 2, 3):
        assert run_services.run_claim(run_id=run.pk, owner=f"w:{delivery}") is True
        Run.objects.filter(pk=run.pk).update(heartbeat_at=stale)
        counts = run_services.runs_reap()
        run.refresh_from_db()
        if delivery < 3:
            assert counts == {"requeued": 1, "failed": 0, "cancelled": 0} and run.status == RunStatus.QUEUED
        else:
            assert counts == {"requeued": 0, "failed": 1, "cancelled": 0}
            assert (run.status, run.error) == (RunStatus.FAILED, "worker lost 3 times")


def test_a_run_whose_worker_dies_while_it_is_cancelled_ends_cancelled(run_factory, settings):
    """Re-queued with its cancel still pending, no delivery would ever claim it: it waited forever."""
    run = run_factory()
    run_services.run_claim(run_id=run.pk, owner="w:1")
    run_services.run_cancel(run=Run.objects.get(pk=run.pk))
    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=settings.RUN_LEASE_SECONDS + 5))
    assert run_services.runs_reap() == {"requeued": 0, "failed": 0, "cancelled": 1}
    run.refresh_from_db()
    assert (run.status, run.cancel_requested, run.lease_owner) == (RunStatus.CANCELLED, False, "")
    assert "cancelled as asked" in run.error and run.finished_at is not None


def test_the_reaper_leaves_live_runs_alone(run_factory):
    run = run_factory()
    run_services.run_claim(run_id=run.pk, owner="w:1")
    assert run_services.runs_reap() == {"requeued": 0, "failed": 0, "cancelled": 0}
    assert Run.objects.get(pk=run.pk).status == RunStatus.STARTING


def test_resume_requeues_a_cancelled_run_and_refuses_a_running_one(run_factory):
    run = run_factory()
    run_services.run_claim(run_id=run.pk, owner="w:1")
    with pytest.raises(Exception, match="Only a cancelled, failed or lost run"):
        run_services.run_resume(run=Run.objects.get(pk=run.pk))
    run_services.run_finish(run_id=run.pk, owner="w:1", status=RunStatus.CANCELLED)
    resumed = run_services.run_resume(run=Run.objects.get(pk=run.pk))
    assert resumed.status == RunStatus.QUEUED and resumed.deliveries == 0


def _add(client, key, kind, data):
    return client.xadd(key, {"kind": kind, "data": json.dumps(data)})


def test_the_persister_moves_points_in_batches_and_never_duplicates(run_factory):
    run = run_factory()
    client = redis_client()
    key = run_stream_key(run.pk)
    client.delete(key)
    try:
        for step in range(1, 2501):
            _add(client, key, "metrics", {"step": step, "epoch": 0, "time": 1.0, "values": {"train_loss": 1 / step,
                                                                                            "lr": 0.1}})
        _add(client, key, "progress", {"step": 2500, "total_steps": 5000, "epoch": 1})
        _add(client, key, "summary", {"step": 2500, "values": {"test_accuracy": 0.97}})
        _add(client, key, "log", {"time": 1.0, "level": "info", "message": "epoch 1 done"})
        _add(client, key, "confusion_matrix", {"split": "test", "labels": ["a", "b"], "matrix": [[1, 0], [0, 1]]})
        _add(client, key, "checkpoint", {"epoch": 1, "step": 2500, "path": "/tmp/x.safetensors", "best": True})
        assert metrics_persist(run_id=run.pk) == 2505
        assert MetricPoint.objects.filter(run=run).count() == 5000
        # a resumed run sends a step again, and a second persister pass reads everything again
        _add(client, key, "metrics", {"step": 2500, "values": {"train_loss": 0.5}})
        Run.objects.filter(pk=run.pk).update(stream_position="0-0")
        metrics_persist(run_id=run.pk)
        assert MetricPoint.objects.filter(run=run).count() == 5000
        assert MetricPoint.objects.get(run=run, name="train_loss", step=2500).value == 0.5
        run.refresh_from_db()
        assert (run.step, run.total_steps, run.summary) == (2500, 5000, {"test_accuracy": 0.97})
        assert run.checkpoints.get().best is True
        assert run.confusion_matrix["labels"] == ["a", "b"]
        assert list(run.log_lines.values_list("message", flat=True)) == ["epoch 1 done"]  # once, though read twice
        summaries = {row.name: row for row in run.metric_summaries.all()}
        assert summaries["train_loss"].min == pytest.approx(1 / 2500) and summaries["train_loss"].max == 1.0
        assert summaries["train_loss"].last == 0.5 and summaries["train_loss"].last_step == 2500
    finally:
        client.delete(key)
