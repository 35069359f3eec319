"""Gang placement of multi-node runs in the database (no process): node slots on distinct workers, a gang that
starts only when complete, slots given back or dropped when their delivery is gone, GPUs held by node slots, and
a lost node re-queueing the run as a lost single node does."""
from datetime import timedelta

import pytest
from django.utils import timezone

from trainer_app.models import Run, RunNode, RunNodeState, RunStatus, Worker, WorkerStatus
from trainer_app.services import nodes as node_services
from trainer_app.services import runs as run_services


def worker(name: str, gpus: int = 0) -> Worker:
    now = timezone.now()
    return Worker.objects.create(name=name, hostname=name.split("@")[-1], status=WorkerStatus.ONLINE,
                                 queues=["cpu"], cpu_count=4, started_at=now, last_heartbeat=now,
                                 gpus=[{"index": index, "name": "GPU"} for index in range(gpus)])


def claim(run, name):
    return node_services.run_node_claim(run_id=run.pk, owner=f"{name}:task", worker_name=name)


def age(node, seconds):
    RunNode.objects.filter(pk=node.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=seconds))


def started_gang(run_factory):
    """A 2-node run whose gang started on workers a@h and b@h: (run, node 0, node 1), both fresh from SQL."""
    a, b = worker("a@h"), worker("b@h")
    run = run_factory(resources={"nnodes": 2})
    leader, member = claim(run, a.name), claim(run, b.name)
    assert node_services.run_gang_start(node=leader)
    leader.refresh_from_db()
    member.refresh_from_db()
    return run, leader, member


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_a_delivery_from_the_queue_a_gang_was_moved_out_of_claims_no_slot(run_factory):
    from trainer_app.models import Queue
    from trainer_app.services.steering import run_move

    a = worker("a@h")
    run = run_factory(resources={"nnodes": 2})
    old = run.queue.name
    Queue.objects.create(name="parked")
    run_move(run=run, queue_name="parked")
    assert node_services.run_node_claim(run_id=run.pk, owner="a@h:t", worker_name=a.name, queue_name=old) is None
    assert not RunNode.objects.filter(run=run).exists()
    assert node_services.run_node_claim(run_id=run.pk, owner="a@h:t", worker_name=a.name, queue_name="parked")


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_a_gang_starts_only_when_every_slot_is_held_by_distinct_workers(run_factory, settings):
    a, b, c = worker("a@h"), worker("b@h"), worker("c@h")
    run = run_factory(resources={"nnodes": 3, "nproc_per_node": 1})
    first = claim(run, a.name)
    assert first.node_rank == 0 and claim(run, a.name) is None, "a worker never holds two slots of one run"
    assert not node_services.run_gang_start(node=first), "two slots missing"
    second = claim(run, b.name)
    assert second.node_rank == 1 and not node_services.run_gang_start(node=first)
    assert Run.objects.get(pk=run.pk).status == RunStatus.QUEUED
    third = claim(run, c.name)
    assert claim(run, worker("d@h").name) is None, "all slots are held"
    assert node_services.run_gang_start(node=first)
    run.refresh_from_db()
    assert run.status == RunStatus.STARTING and run.lease_owner == first.lease_owner and run.deliveries == 1
    nodes = list(RunNode.objects.filter(run=run))
    assert {node.state for node in nodes} == {RunNodeState.RUNNING}
    assert len({node.rendezvous for node in nodes}) == 1 and nodes[0].rendezvous.startswith(f"{first.address}:")
    assert not node_services.run_node_release(node=third), "a started gang's node must run"


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_slots_are_given_back_and_a_dead_claimers_slot_is_dropped(run_factory, django_capture_on_commit_callbacks):
    a, b = worker("a@h"), worker("b@h")
    run = run_factory(resources={"nnodes": 2})
    first = claim(run, a.name)
    assert node_services.run_node_release(node=first) and not RunNode.objects.exists()
    first = claim(run, a.name)
    age(first, 3600)  # its worker died while it waited
    with django_capture_on_commit_callbacks() as sent:
        replacement = claim(run, b.name)
    assert replacement.node_rank == 0 and list(RunNode.objects.values_list("worker_name", flat=True)) == [b.name]
    assert len(sent) == 1, "the dead delivery's message is sent again: the gang needs two"
    assert node_services.run_node_heartbeat(node=first) is None


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_a_cancelled_or_capped_run_does_not_start_its_gang(run_factory):
    from trainer_app.models import Queue

    a, b = worker("a@h"), worker("b@h")
    run = run_factory(resources={"nnodes": 2})
    first, _ = claim(run, a.name), claim(run, b.name)
    Queue.objects.filter(pk=run.queue_id).update(max_concurrent=1)
    busy = run_factory(status=RunStatus.RUNNING)
    assert not node_services.run_gang_start(node=first), "the queue runs its max_concurrent already"
    Run.objects.filter(pk=busy.pk).update(status=RunStatus.SUCCEEDED)
    run_services.run_cancel(run=run)
    assert not node_services.run_gang_start(node=first) and Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED
    assert claim(run, worker("c@h").name) is None


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_node_slots_hold_their_gpus(run_factory):
    gpu = worker("gpu@h", gpus=2)
    gang = run_factory(resources={"nnodes": 2, "nproc_per_node": 1, "gpus_per_node": 2})
    node = claim(gang, gpu.name)
    assert node.cuda_visible_devices == "0,1"
    single = run_factory(resources={"nproc_per_node": 1, "gpus_per_node": 1})
    assert not run_services.run_claim(run_id=single.pk, owner="x", worker_name=gpu.name), "both GPUs are held"
    node_services.run_node_release(node=node)
    assert run_services.run_claim(run_id=single.pk, owner="x", worker_name=gpu.name)


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_a_lost_node_requeues_the_run_and_a_failed_one_is_named(run_factory, settings,
                                                               django_capture_on_commit_callbacks):
    a, b = worker("a@h"), worker("b@h")
    run = run_factory(resources={"nnodes": 2})
    leader, member = claim(run, a.name), claim(run, b.name)
    assert node_services.run_gang_start(node=leader)
    leader.refresh_from_db()
    assert node_services.gang_peer_problem(node=leader) is None
    node_services.run_node_finish(node=member, state=RunNodeState.FAILED, exit_code=-9,
                                  error="its torchrun was killed by SIGKILL")
    problem = node_services.gang_peer_problem(node=leader)
    assert problem.blamed and not problem.lost and problem.message.startswith("node 1 on b@h failed")
    RunNode.objects.filter(pk=member.pk).update(state=RunNodeState.RUNNING)
    age(member, settings.RUN_LEASE_SECONDS + 1)
    problem = node_services.gang_peer_problem(node=leader)
    assert problem.lost and "node 1 on b@h was lost" in problem.message
    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert node_services.run_gang_requeue(run_id=run.pk, owner=leader.lease_owner,
                                              reason=problem.message) == RunStatus.QUEUED
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and "re-queued" in run.error and len(sent) == 1  # one send, two messages
    again = claim(run, a.name)
    assert again.node_rank == 0 and RunNode.objects.filter(run=run).count() == 1, "the old gang's slots are gone"
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, lease_owner="gone", deliveries=3)
    assert node_services.run_gang_requeue(run_id=run.pk, owner="gone", reason="node 1 was lost") == RunStatus.FAILED
    assert "lost 3 times" in Run.objects.get(pk=run.pk).error


@pytest.mark.django_db
def test_the_fleet_shows_a_gangs_member_nodes_with_their_gpus(run_factory):
    from trainer_app.selectors.fleet import fleet_metrics, fleet_overview

    a, b = worker("a@h", gpus=2), worker("b@h", gpus=2)
    run = run_factory(resources={"nnodes": 2, "nproc_per_node": 1, "gpus_per_node": 1}, name="wide")
    leader, _member = claim(run, a.name), claim(run, b.name)
    assert node_services.run_gang_start(node=leader)
    rows = {row["worker"].name: row for row in fleet_overview()["rows"]}
    held = {name: [gpu["run"]["label"] for gpu in row["gpus"] if gpu["run"]] for name, row in rows.items()}
    assert held == {"a@h": ["wide"], "b@h": ["wide (node 1)"]}
    assert fleet_metrics()["gpus"] == {"busy": 2, "free": 2}


@pytest.mark.django_db(transaction=True)
def test_waiting_for_the_gang_starts_gives_back_on_timeout_and_leaves_a_cancelled_run(run_factory):
    from trainer_app.gang import gang_wait
    from trainer_app.models import Queue

    a, b = worker("a@h"), worker("b@h")
    run = run_factory(resources={"nnodes": 2})
    leader = claim(run, a.name)
    assert gang_wait(leader, timeout_s=1) == "timeout" and not RunNode.objects.exists()
    leader, member = claim(run, a.name), claim(run, b.name)
    Queue.objects.filter(pk=run.queue_id).update(paused=True)
    assert gang_wait(leader, timeout_s=1) == "timeout", "a paused queue starts no gang"
    Queue.objects.filter(pk=run.queue_id).update(paused=False)
    leader = claim(run, a.name)
    assert gang_wait(leader, timeout_s=5) == "start" and gang_wait(member, timeout_s=5) == "start"
    assert Run.objects.get(pk=run.pk).status == RunStatus.STARTING
    other = run_factory(resources={"nnodes": 2})
    waiting = claim(other, a.name)
    run_services.run_cancel(run=other)
    assert gang_wait(waiting, timeout_s=5) == "gone" and not RunNode.objects.filter(run=other).exists()


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_rank_zeros_success_stands_when_a_node_fails_in_its_teardown(run_factory, tmp_path):
    from trainer_app.engine import exit_codes
    from trainer_app.gang import GangLeaderSupervisor, GangMemberSupervisor

    run, leader, member = started_gang(run_factory)
    result = tmp_path / "result.json"
    exit_codes.write_result(result, exit_code=exit_codes.SUCCEEDED, state="succeeded", message="finished 2 epochs",
                            run_id=str(run.pk), step=18, epoch=2, summary={})
    node = GangMemberSupervisor(run.pk, member)
    node.result_path = result
    node.log_tail.append("traceback : Signal 6 (SIGABRT) received by PID 25814")
    assert node._report(1) == "node-succeeded"  # rank 1 aborted while tearing down, after the run was done
    supervisor = GangLeaderSupervisor(run.pk, leader.lease_owner, leader)
    supervisor.result_path = result
    assert supervisor._finish(-9) == RunStatus.SUCCEEDED  # killed in the exit barrier that node 1 never reached
    assert dict(RunNode.objects.filter(run=run).values_list("node_rank", "state")) == {0: "succeeded", 1: "succeeded"}


@pytest.mark.django_db(transaction=True)
def test_racing_deliveries_fill_each_slot_once(run_factory):
    import threading

    from django.db import connection

    names = [worker(f"w{index}@h").name for index in range(8)]
    run = run_factory(resources={"nnodes": 3})
    claimed = {}

    def race(name):
        try:
            claimed[name] = claim(run, name)
        finally:
            connection.close()

    threads = [threading.Thread(target=race, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    held = [node for node in claimed.values() if node is not None]
    assert sorted(node.node_rank for node in held) == [0, 1, 2] and RunNode.objects.filter(run=run).count() == 3


@pytest.mark.django_db(transaction=True)  # the supervisor closes stale connections while it waits for its peers
@pytest.mark.sqlite_ok
def test_node_zero_names_itself_when_its_own_torchrun_died_first(run_factory, tmp_path):
    from trainer_app.gang import GangLeaderSupervisor

    run, leader, member = started_gang(run_factory)
    node_services.run_node_finish(node=member, state=RunNodeState.FAILED, exit_code=1,
                                  error="its torchrun exited with code 1 (RuntimeError: Connection reset by peer)")
    supervisor = GangLeaderSupervisor(run.pk, leader.lease_owner, leader)
    supervisor.result_path = tmp_path / "result.json"  # none: node 0's ranks were killed with its torchrun
    assert supervisor._finish(-9) == RunStatus.FAILED
    error = Run.objects.get(pk=run.pk).error
    assert error.startswith("node 0 on a@h failed: its torchrun was killed by SIGKILL; the other nodes stopped"), error
