"""Preemption: a waiting run of higher priority that cannot start because lower-priority runs of a preemptible queue
hold what it needs (GPUs of a worker, or the queue's max_concurrent slots) has them checkpoint and go back to their
queue; they resume later from that checkpoint. GPU decisions are tested on workers as their heartbeats write them;
the slot case end to end with a real worker and real torchrun trainings."""
import pytest

from tests.conftest import wait_until
from tests.integration.test_fleet_placement import gpu_worker
from trainer_app.models import MetricPoint, Queue, Run, RunStatus
from trainer_app.services import runs as run_services
from trainer_app.services import steering


@pytest.fixture
def spot(run_factory):
    """A preemptible queue of low priority and an urgent one, both consumed by one worker of 2 GPUs that runs a
    1-GPU job of the spot queue on each GPU."""
    spot_queue = Queue.objects.create(name="spot", resource_class="gpu", priority=7, preemptible=True)
    urgent = Queue.objects.create(name="urgent", resource_class="gpu", priority=1)
    worker = gpu_worker("gpu@node1", 2)
    worker.queues = ["spot", "urgent"]
    worker.save()
    running = []
    for name in ("older", "younger"):
        run = run_factory(queue=spot_queue, priority=7, name=name, resources={"nproc_per_node": 1, "gpus_per_node": 1})
        assert run_services.run_claim(run_id=run.pk, owner=f"w:{run.pk}", worker_name=worker.name)
        running.append(run.pk)
    return {"queue": spot_queue, "urgent": urgent, "worker": worker, "running": running, "make": run_factory}


def stop_as_the_supervisor_does(run_id: int) -> None:
    """What a run's supervisor does when its heartbeat says stop: the engine checkpoints, the run ends cancelled."""
    owner = f"w:{run_id}"
    assert run_services.run_heartbeat(run_id=run_id, owner=owner) == (True, True)
    assert run_services.run_finish(run_id=run_id, owner=owner, status=RunStatus.CANCELLED)


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_a_gpu_job_of_higher_priority_preempts_spot_jobs_which_wait_again_and_it_gets_their_gpus(spot):
    big = spot["make"](queue=spot["urgent"], priority=1, resources={"nproc_per_node": 2, "gpus_per_node": 2})
    worker = spot["worker"].name
    assert steering.run_claim_in_order(run_id=big.pk, owner="w:big", worker_name=worker) is None
    asked = steering.runs_preempt_for(run_id=big.pk, worker_name=worker)
    assert sorted(asked) == sorted(spot["running"])
    assert steering.runs_preempt_for(run_id=big.pk, worker_name=worker) == [], "asked once, not at every delivery"
    assert steering.runs_preempt() == {"queues": 1, "preempted": 0}
    for run_id in spot["running"]:
        stop_as_the_supervisor_does(run_id)
        victim = Run.objects.get(pk=run_id)
        assert (victim.status, victim.preempted_by_id, victim.preemptions, victim.deliveries) == (
            "queued", big.pk, 1, 0)
    assert steering.run_claim_in_order(run_id=big.pk, owner="w:big", worker_name=worker) == big.pk
    assert Run.objects.get(pk=big.pk).resources["cuda_visible_devices"] == "0,1"
    # the spot runs wait; nothing of theirs preempts anything (nothing runs below them)
    assert steering.runs_preempt_for(run_id=spot["running"][0], worker_name=worker) == []


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_only_what_is_needed_is_preempted_the_youngest_first(spot):
    Run.objects.filter(pk=spot["running"][1]).update(started_at=Run.objects.get(pk=spot["running"][0]).started_at
                                                     + __import__("datetime").timedelta(seconds=5))
    one = spot["make"](queue=spot["urgent"], priority=1, resources={"nproc_per_node": 1, "gpus_per_node": 1})
    assert steering.runs_preempt() == {"queues": 1, "preempted": 1}  # the periodic pass finds it too
    assert Run.objects.get(pk=spot["running"][1]).preempted_by_id == one.pk
    assert not Run.objects.get(pk=spot["running"][0]).cancel_requested


@pytest.mark.django_db
@pytest.mark.sqlite_ok
@pytest.mark.parametrize("why", ["not preemptible", "same priority", "free elsewhere", "not enough to free",
                                 "paused"])
def test_nothing_is_preempted_when_it_would_not_be_right_or_would_not_help(spot, why):
    from django.utils import timezone

    priority, needed = 1, 2
    if why == "not preemptible":
        Queue.objects.filter(pk=spot["queue"].pk).update(preemptible=False)
    elif why == "same priority":
        priority = 7
    elif why == "free elsewhere":
        other = gpu_worker("gpu@node2", 2)
        other.queues = ["urgent"]
        other.save()
    elif why == "not enough to free":
        needed = 3
        Worker = type(spot["worker"])
        Worker.objects.filter(pk=spot["worker"].pk).update(gpus=spot["worker"].gpus + [
            {"index": 2, "name": "NVIDIA H200", "memory_total_mb": 143771}])
        keeper = Queue.objects.create(name="keeper", resource_class="gpu", priority=9)
        held = spot["make"](queue=keeper, priority=9, resources={"nproc_per_node": 1, "gpus_per_node": 1})
        assert run_services.run_claim(run_id=held.pk, owner="w:held", worker_name=spot["worker"].name)
        Run.objects.filter(pk=held.pk).update(heartbeat_at=timezone.now())
    elif why == "paused":
        Queue.objects.filter(pk=spot["urgent"].pk).update(paused=True)
    big = spot["make"](queue=spot["urgent"], priority=priority,
                       resources={"nproc_per_node": needed, "gpus_per_node": needed})
    assert steering.runs_preempt_for(run_id=big.pk, worker_name=spot["worker"].name) == []
    assert steering.runs_preempt()["preempted"] == 0
    assert not Run.objects.filter(cancel_requested=True).exists()


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_a_full_preemptible_queue_frees_one_slot_for_a_run_of_higher_priority(run_factory):
    queue = Queue.objects.create(name="capped", max_concurrent=1, preemptible=True, priority=5)
    low = run_factory(queue=queue, priority=5)
    assert run_services.run_claim(run_id=low.pk, owner=f"w:{low.pk}")
    high = run_factory(queue=queue, priority=5)
    assert steering.runs_preempt() == {"queues": 1, "preempted": 0}, "same priority: it waits its turn"
    steering.run_move(run=high, priority=2)
    assert steering.runs_preempt() == {"queues": 1, "preempted": 1}
    assert steering.runs_preempt() == {"queues": 1, "preempted": 0}
    stop_as_the_supervisor_does(low.pk)
    assert steering.run_claim_in_order(run_id=low.pk, owner="w:next") == high.pk, "the preemptor starts first"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker_process")
def test_a_preempted_training_checkpoints_waits_and_resumes_from_its_checkpoint(api_client, user_factory, client):
    """On the worker's cpu queue (one slot, preemptible), a long low-priority training is running when an admin
    raises a waiting run's priority: it checkpoints, goes back to the queue, the other runs, then it resumes
    from its checkpoint with no duplicate metric point."""
    from tests.integration.test_fleet_steering import _lab
    from tests.integration.test_runs_end_to_end import launch
    from trainer_app.streams import decode_entry, redis_client, run_stream_key

    lab = _lab(api_client)
    Queue.objects.filter(name="cpu").update(preemptible=True, max_concurrent=1)
    low = launch(lab, dataset="wine", model="mlp", epochs=5000, batch_size=16).json()["id"]  # runs until preempted
    wait_until(lambda: Run.objects.get(id=low).checkpoints.exists(), timeout_s=120, message="a first checkpoint")
    high = launch(lab, dataset="wine", model="mlp", epochs=1).json()["id"]
    admin = user_factory("fleet-admin", staff=True)
    api_client.force_authenticate(admin)
    assert api_client.post(f"/api/runs/{high}/move/", {"priority": 1}, format="json").status_code == 200
    # the worker's only process runs the low run, so no delivery asks: the periodic pass (beat) does
    assert steering.runs_preempt()["preempted"] == 1
    wait_until(lambda: Run.objects.get(id=low).status == RunStatus.QUEUED, timeout_s=90, message="the low run back")
    preempted = Run.objects.get(id=low)
    stopped_at = preempted.step
    assert preempted.preempted_by_id == high and preempted.preemptions == 1 and not preempted.cancel_requested
    assert preempted.checkpoints.filter(step__gte=stopped_at - 20).exists(), "it checkpointed when it stopped"
    client.force_login(admin)
    Run.objects.filter(pk=low).update(created_by=admin)  # the page is for members: make the admin one
    lab["project"].memberships.create(user=admin, role="admin")
    page = client.get(f"/runs/{low}/").content.decode()
    assert "Preempted by" in page and f"/runs/{high}/" in page
    wait_until(lambda: Run.objects.get(id=high).status == RunStatus.SUCCEEDED, timeout_s=120, message="the high run")
    wait_until(lambda: Run.objects.get(id=low).step > stopped_at + 5, timeout_s=120, message="the low run resumed")
    resumed = Run.objects.get(id=low)
    assert resumed.started_at > Run.objects.get(id=high).started_at
    entries = [decode_entry(fields) for _, fields in redis_client().xrange(run_stream_key(low))]
    starts = [data for kind, data in entries if kind == "status" and data.get("state") == "running"]
    assert len(starts) == 2 and starts[-1]["resumed_from_step"] >= stopped_at - 20
    run_services.run_cancel(run=resumed)
    wait_until(lambda: Run.objects.get(id=low).status == RunStatus.CANCELLED, timeout_s=90, message="the cancel")
    steps = list(MetricPoint.objects.filter(run_id=low, name="train_loss").values_list("step", flat=True))
    assert steps and len(steps) == len(set(steps))


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_a_run_lost_while_it_stopped_for_a_preemption_is_back_in_its_queue_and_claimable(spot, settings):
    from datetime import timedelta

    from django.utils import timezone

    big = spot["make"](queue=spot["urgent"], priority=1, resources={"nproc_per_node": 2, "gpus_per_node": 2})
    victim = spot["running"][0]
    assert victim in steering.runs_preempt_for(run_id=big.pk, worker_name=spot["worker"].name)
    expired = timezone.now() - timedelta(seconds=settings.RUN_LEASE_SECONDS + 1)
    Run.objects.filter(pk__in=spot["running"]).update(heartbeat_at=expired)
    assert run_services.runs_reap()["requeued"] == 2  # their worker died before they checkpointed
    lost = Run.objects.get(pk=victim)
    assert (lost.status, lost.cancel_requested, lost.requeue_requested) == ("queued", False, False)
    assert run_services.run_claim(run_id=victim, owner="w:again", worker_name=spot["worker"].name)


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_admins_make_a_queue_preemptible_through_the_api(api_client, user_factory):
    api_client.force_authenticate(user_factory("queue-admin", staff=True))
    created = api_client.post("/api/queues/", {"name": "lend", "preemptible": True}, format="json")
    assert created.status_code == 201 and created.json()["preemptible"] is True
    queue_id = created.json()["id"]
    changed = api_client.patch(f"/api/queues/{queue_id}/", {"preemptible": False}, format="json")
    assert changed.status_code == 200 and changed.json()["preemptible"] is False
    assert api_client.post("/api/queues/", {"name": "plain"}, format="json").json()["preemptible"] is False
    api_client.force_authenticate(user_factory("analyst"))
    assert api_client.patch(f"/api/queues/{queue_id}/", {"preemptible": True}, format="json").status_code == 403


def test_the_preemption_pass_runs_on_the_beat_on_the_control_queue():
    from django.conf import settings

    assert settings.CELERY_BEAT_SCHEDULE["runs-preempt"]["task"] == "trainer_app.tasks.runs_preempt"
    assert settings.CELERY_TASK_ROUTES["trainer_app.tasks.runs_preempt"] == {"queue": "control"}
