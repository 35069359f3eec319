"""Faults on one machine, with real Celery workers supervising real torchrun jobs: an engine whose rank is
stopped (SIGSTOP) is found hung, killed to the last process and resumed from its checkpoint, and fails after
three attempts; a poison job that kills its worker every time stops after three deliveries while other runs
keep going. (A worker killed mid-run: test_runs_end_to_end; a flushed broker: test_fleet_reconcile; a
restarted Redis: test_fleet_redis_restart.)"""
import os
import signal
from datetime import timedelta

import psutil
import pytest
from django.conf import settings

from tests.conftest import start_worker, stop_worker, wait_until
from tests.integration.test_runs_end_to_end import engine_processes, lab, launch, wait_status  # noqa: F401
from trainer_app.models import MetricPoint, Queue, Run, RunLog, RunStatus
from trainer_app.services import runs as run_services

HANG_TIMEOUT_S = 5


@pytest.fixture(scope="module")
def faults_worker(django_db_setup, django_db_blocker, tmp_path_factory):
    """One worker for the module, on the `faults` queue only, that calls an engine hung after 5 s without
    progress."""
    with django_db_blocker.unblock():
        process = start_worker(queues="faults", name="faults", log=tmp_path_factory.mktemp("faults") / "worker.log",
                               environment={"TRAINYARD_RUN_HANG_TIMEOUT_S": str(HANG_TIMEOUT_S)})
    yield process
    stop_worker(process)


@pytest.fixture
def faults_queue(transactional_db):
    return Queue.objects.create(name="faults")


def ranks_of(run_id: int) -> list[psutil.Process]:
    """The engine's rank processes (not torchrun's agent)."""
    return [process for process in engine_processes(run_id)
            if "torch.distributed.run" not in " ".join(process.info["cmdline"] or [])]


def gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def rank_number(process: psutil.Process) -> int | None:
    try:
        return int(process.environ().get("RANK", -1))
    except psutil.Error:
        return None


def stop_a_rank(run_id: int, *, delivery: int, rank: int = 1) -> psutil.Process:
    """SIGSTOP the given rank of the run's given delivery once it is up."""
    def find():
        run = Run.objects.get(id=run_id)
        if run.deliveries != delivery or run.status != RunStatus.RUNNING:
            return None
        return next((process for process in ranks_of(run_id) if rank_number(process) == rank), None)

    process = wait_until(find, timeout_s=120, message=f"rank {rank} of delivery {delivery}")
    os.kill(process.pid, signal.SIGSTOP)
    return process


def hang_logs(run_id: int) -> list[str]:
    return list(RunLog.objects.filter(run_id=run_id, message__contains="the engine hung")
                .order_by("entry").values_list("message", flat=True))


@pytest.mark.usefixtures("faults_worker", "faults_queue")
def test_a_hung_engine_is_killed_and_resumes_from_its_checkpoint_and_fails_after_three_attempts(lab):  # noqa: F811
    """Two ranks: stopping rank 1 leaves rank 0 waiting in a collective, the hang this is for."""
    body = {"project": lab["project"].id, "dataset": lab["wine"], "model": lab["mlp"], "queue": "faults",
            "config": {"optimizer": "adam", "lr": 0.003, "batch_size": 16, "epochs": 1000, "seed": 0},
            "resources": {"nproc_per_node": 2}}
    run_id = lab["client"].post("/api/runs/", body, format="json").json()["id"]
    wait_until(lambda: Run.objects.get(id=run_id).checkpoints.exists(), timeout_s=120, message="a checkpoint")

    stopped = stop_a_rank(run_id, delivery=1)  # mid-training: its steps stop, the other threads too
    first_ranks = ranks_of(run_id)
    assert len(first_ranks) == 2
    wait_until(lambda: Run.objects.get(id=run_id).deliveries == 2, timeout_s=60, message="the hung run re-queued")
    assert gone(stopped) and all(gone(process) for process in first_ranks), "every rank must be killed"
    checkpoint = Run.objects.get(id=run_id).checkpoints.order_by("-step").first()
    wait_until(lambda: Run.objects.get(id=run_id).step > checkpoint.step + 20, timeout_s=120,
               message="the resumed run to train on")
    assert RunLog.objects.filter(run_id=run_id, message__contains=f"(epoch {checkpoint.epoch + 1}, step "
                                                                  f"{checkpoint.step})").exists(), \
        "the second delivery resumes from the last checkpoint"
    [logged] = hang_logs(run_id)  # rank 1 (and rank 0, waiting for it) in training, checkpointing…
    assert logged.startswith(f"no progress for {HANG_TIMEOUT_S} s: the engine hung (rank ") and "rank 1 " in logged
    assert logged.endswith("): the engine was stopped and the run re-queued to resume from its last checkpoint")

    stop_a_rank(run_id, delivery=2, rank=0)
    third = wait_until(lambda: Run.objects.get(id=run_id).deliveries == 3 and ranks_of(run_id), timeout_s=90,
                       message="the third delivery's ranks")
    os.kill(third[0].pid, signal.SIGSTOP)  # as it starts, before torch is even loaded: still caught
    body = wait_status(lab, run_id, {"failed", "succeeded", "cancelled"}, timeout_s=60)
    assert body["status"] == "failed", body
    # "(rank 0 starting)", or "(1 rank(s) never started; 1 did)" if it was stopped before its first word
    assert body["error"].startswith(f"no progress for {HANG_TIMEOUT_S} s: the engine hung ("), body["error"]
    assert body["error"].endswith("; lost 3 times, not retried")
    wait_until(lambda: not engine_processes(run_id), timeout_s=10, message="no engine process left")
    steps = list(MetricPoint.objects.filter(run_id=run_id, name="train_loss").values_list("step", flat=True))
    assert len(steps) == len(set(steps)) and len(steps) > 20


@pytest.mark.usefixtures("faults_queue")
def test_a_poison_job_that_kills_its_worker_every_time_fails_after_three_deliveries_and_others_go_on(
        lab, faults_worker):  # noqa: F811
    """Each time the poison run starts, its worker's process dies (as if the job took the machine down); the
    reaper hands it out again until its third loss fails it, and a run queued behind it still succeeds."""
    poison = launch(lab, dataset="wine", model="mlp", queue="faults", epochs=5000).json()["id"]
    other = launch(lab, dataset="wine", model="mlp", queue="faults", epochs=1).json()["id"]
    for delivery in (1, 2, 3):
        run = wait_until(lambda: Run.objects.filter(id=poison, deliveries=delivery,
                                                    status__in=(RunStatus.STARTING, RunStatus.RUNNING)).first(),
                         timeout_s=120, message=f"delivery {delivery} of the poison run")
        supervisor = psutil.Process(faults_worker.pid).children()  # the prefork pool's process runs the task
        assert len(supervisor) == 1
        supervisor[0].kill()
        wait_until(lambda: not engine_processes(poison), timeout_s=30, message="its engine to die with it")
        Run.objects.filter(id=poison).update(heartbeat_at=run.heartbeat_at - timedelta(
            seconds=settings.RUN_LEASE_SECONDS + 1))  # the lease runs out (without waiting 30 s)
        expected = ({"requeued": 1, "failed": 0, "cancelled": 0} if delivery < 3
                    else {"requeued": 0, "failed": 1, "cancelled": 0})
        assert run_services.runs_reap() == expected
    failed = Run.objects.get(id=poison)
    assert (failed.status, failed.error, failed.deliveries) == (RunStatus.FAILED, "worker lost 3 times", 3)
    body = wait_status(lab, other, {"failed", "succeeded", "cancelled"}, timeout_s=120)
    assert body["status"] == "succeeded", body
    assert Run.objects.get(id=poison).status == RunStatus.FAILED and not engine_processes(poison)


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_giving_up_a_hung_attempt_requeues_it_with_the_reason_and_fails_the_third(run_factory):
    reason = "no progress for 5 s: the engine hung (rank 0 training)"
    run = run_factory(status=RunStatus.RUNNING, lease_owner="w:1", deliveries=1)
    assert run_services.run_give_up_attempt(run_id=run.pk, owner="someone-else", reason=reason) == ""
    assert run_services.run_give_up_attempt(run_id=run.pk, owner="w:1", reason=reason) == RunStatus.QUEUED
    run.refresh_from_db()
    assert (run.status, run.lease_owner) == (RunStatus.QUEUED, "")
    assert run.error == f"{reason}; re-queued to resume from its last checkpoint (attempt 1 of 3)"
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, lease_owner="w:3", deliveries=3)
    assert run_services.run_give_up_attempt(run_id=run.pk, owner="w:3", reason=reason,
                                            log_tail=["[rank0] …"]) == RunStatus.FAILED
    run.refresh_from_db()
    assert (run.status, run.error, run.log_tail) == (RunStatus.FAILED, f"{reason}; lost 3 times, not retried",
                                                     ["[rank0] …"])
    assert run.finished_at is not None
