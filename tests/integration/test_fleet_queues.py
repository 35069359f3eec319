"""Queues that steer runs: roles that may use a queue (checked where runs and sweep trials are created) and
a queue's max_concurrent, held where a run is claimed, even by claims racing each other."""
import threading

import pytest
from celery.exceptions import Retry
from django.core.exceptions import ValidationError
from django.db import connection

from trainer_app.models import Queue, Role, Run, RunStatus
from trainer_app.services import runs as run_services
from trainer_app.tasks import run_execute


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_a_queue_the_members_role_may_not_use_is_refused_naming_the_ones_they_may(run_factory, api_client):
    Queue.objects.get_or_create(name="cpu")
    Queue.objects.create(name="leads", allowed_roles=["lead", "admin"])
    Queue.objects.create(name="shared", allowed_roles=["analyst", "lead"])
    owner, project = run_factory.owner, run_factory.project
    run = run_factory()  # the dataset and design of the project
    with pytest.raises(ValidationError) as refused:
        run_services.run_create(project=project, dataset=run.dataset, design=run.design, config={}, resources={},
                                queue_name="leads", created_by=owner)
    message = refused.value.message_dict["queue"][0]
    assert "'leads' is for lead and admin members only" in message
    assert "as analyst of runs-project you may use: cpu, shared" in message
    api_client.force_authenticate(owner)
    response = api_client.post("/api/runs/", {"project": project.id, "dataset": run.dataset_id, "model": run.design_id,
                                              "queue": "leads", "config": {"epochs": 1}}, format="json")
    assert response.status_code == 400 and "you may use: cpu, shared" in response.json()["queue"][0]
    assert Run.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_a_lead_passes_the_queue_check(run_factory):
    queue = Queue.objects.create(name="leads", allowed_roles=["lead"])
    run_services._queue_check_role(queue=queue, role=Role.LEAD, project=run_factory.project)  # no refusal
    with pytest.raises(ValidationError):
        run_services._queue_check_role(queue=queue, role=Role.ANALYST, project=run_factory.project)


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_a_capped_queue_never_claims_more_than_max_concurrent(run_factory):
    queue = Queue.objects.create(name="capped", max_concurrent=2)
    runs = [run_factory(queue=queue) for _ in range(4)]
    claimed = [run_services.run_claim(run_id=run.pk, owner=f"w:{run.pk}") for run in runs]
    assert claimed == [True, True, False, False]
    assert Run.objects.filter(pk=runs[2].pk, status=RunStatus.QUEUED).exists()
    run_services.run_finish(run_id=runs[0].pk, owner=f"w:{runs[0].pk}", status=RunStatus.SUCCEEDED)
    assert run_services.run_claim(run_id=runs[2].pk, owner="w:again") is True
    assert run_services.run_claim(run_id=runs[3].pk, owner="w:again") is False
    Queue.objects.filter(pk=queue.pk).update(max_concurrent=None)
    assert run_services.run_claim(run_id=runs[3].pk, owner="w:again") is True


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_a_delivery_to_a_full_queue_comes_back_later_and_a_cancelled_one_does_nothing(run_factory):
    queue = Queue.objects.create(name="one-at-a-time", max_concurrent=1)
    busy, waiting = run_factory(queue=queue), run_factory(queue=queue)
    assert run_services.run_claim(run_id=busy.pk, owner="w:busy")
    with pytest.raises(Retry):  # called directly, Celery's retry raises instead of scheduling the delivery
        run_execute.run(waiting.pk)
    assert Run.objects.get(pk=waiting.pk).status == RunStatus.QUEUED
    run_services.run_cancel(run=waiting)
    assert run_execute.run(waiting.pk) == "not-claimed"


@pytest.mark.django_db(transaction=True)
def test_racing_claims_on_a_capped_queue_start_exactly_max_concurrent(run_factory):
    queue = Queue.objects.create(name="raced", max_concurrent=2)
    runs = [run_factory(queue=queue) for _ in range(6)]
    barrier, results = threading.Barrier(len(runs)), []

    def claim(run_id: int) -> None:
        try:
            barrier.wait()
            results.append(run_services.run_claim(run_id=run_id, owner=f"w:{run_id}"))
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(run.pk,)) for run in runs]
    [thread.start() for thread in threads]
    [thread.join(timeout=30) for thread in threads]
    assert sorted(results) == [False] * 4 + [True] * 2
    assert Run.objects.filter(queue=queue, status=RunStatus.STARTING).count() == 2


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_a_job_that_needs_gpus_is_refused_on_a_cpu_queue_naming_the_gpu_queues(run_factory):
    Queue.objects.update_or_create(name="cpu", defaults={"resource_class": "cpu"})
    Queue.objects.update_or_create(name="gpu", defaults={"resource_class": "gpu"})
    run = run_factory()
    with pytest.raises(ValidationError) as refused:
        run_services.run_create(project=run_factory.project, dataset=run.dataset, design=run.design, config={},
                                resources={"gpus_per_node": 1}, queue_name="cpu", created_by=run_factory.owner)
    message = refused.value.message_dict["queue"][0]
    assert "1 GPU(s) per node need a GPU queue" in message and "choose one of gpu" in message
