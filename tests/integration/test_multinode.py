"""Multi-node DDP on one machine: two real Celery workers (distinct node names, one queue) run a 2-node gang over
loopback with gloo. It waits until both nodes are placed, trains to the same result as one node with the same
global batch, stops every node on cancel, and fails cleanly, naming the node, when one node's torchrun is killed."""
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from safetensors.torch import load_file

from tests.conftest import REPO, child_environment, wait_until
from tests.integration.test_runs_end_to_end import wait_status
from trainer_app.models import Dataset, Queue, Role, Run, RunNode, RunStatus, Worker
from trainer_app.services.datasets import datasets_seed_samples
from trainer_app.services.queues import queues_ensure_defaults
from trainer_app.specs import checkpoint_weights

QUEUE = "gang"  # only this module's workers consume it
FINAL = {"succeeded", "failed", "cancelled"}
NODES = ("node-a", "node-b")


class Workers:
    """This module's Celery workers, started on demand and kept across its tests."""

    def __init__(self, directory):
        self.directory = directory
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, *names: str) -> None:
        for name in names:
            if name in self.processes and self.processes[name].poll() is None:
                continue
            log = open(self.directory / f"{name}.log", "wb")
            environment = child_environment(TRAINYARD_NODE_ADDRESS="127.0.0.1")
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", QUEUE, "-n", f"{name}@%h",
                 "--pool", "prefork", "--concurrency", "1", "--without-gossip", "--without-mingle"],
                cwd=REPO, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_online(self, *names: str) -> None:
        def online():
            online = Worker.objects.filter(status="online").values_list("name", flat=True)
            registered = {name.split("@")[0] for name in online}
            return set(names) <= registered

        wait_until(online, timeout_s=90, interval_s=0.5, message=f"workers {names} online")

    def stop(self, *names: str) -> None:
        for name in names or list(self.processes):
            process = self.processes.pop(name, None)
            if process is None:
                continue
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture(scope="module")
def workers(django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock():
        started = Workers(tmp_path_factory.mktemp("gang-workers"))
    yield started
    started.stop()


@pytest.fixture
def lab(transactional_db, user_factory, project_factory, api_client):
    user = user_factory("ana")
    project = project_factory("lab", (user, Role.ANALYST))
    datasets_seed_samples(project=project, created_by=user)
    queues_ensure_defaults()
    Queue.objects.create(name=QUEUE)
    api_client.force_authenticate(user)
    mlp = api_client.post("/api/models/", {"project": project.id, "name": "mlp", "spec": {"preset": "mlp"}},
                          format="json").json()
    return {"client": api_client, "project": project, "user": user, "mlp": mlp["id"],
            "wine": Dataset.objects.get(project=project, name="wine").id}


def launch(lab, *, nnodes: int, nproc_per_node: int, queue: str = QUEUE, **config):
    body = {"project": lab["project"].id, "dataset": lab["wine"], "model": lab["mlp"], "queue": queue,
            "config": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "batch_size": 16, "epochs": 2, "seed": 3,
                       "deterministic": True, **config},
            "resources": {"nnodes": nnodes, "nproc_per_node": nproc_per_node}}
    return lab["client"].post("/api/runs/", body, format="json")


def run_processes(run_id: int) -> list[psutil.Process]:
    """torchrun agents and engine ranks of this run, on any node (their spec lies in the run's directory)."""
    from django.conf import settings

    found, directory = [], f"{settings.MEDIA_ROOT}/runs/{run_id}/spec"  # this session's, not another checkout's
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "trainer_app.engine" in cmdline and directory in cmdline:
            found.append(process)
    return found


def final_weights(run_id: int) -> dict:
    checkpoint = Run.objects.get(id=run_id).checkpoints.order_by("-step").first()
    return load_file(str(checkpoint_weights(checkpoint)))


def test_a_two_node_run_waits_for_its_gang_then_matches_one_node_with_the_same_global_batch(lab, workers):
    workers.stop("node-b")  # when another test of this module ran first
    workers.start("node-a")
    workers.wait_online("node-a")
    # A second worker is registered (so the launch is accepted) but does not consume yet, as when it is busy.
    from django.utils import timezone

    now = timezone.now()
    Worker.objects.create(name="node-b@busy", hostname="busy", queues=[QUEUE], cpu_count=2, started_at=now,
                          last_heartbeat=now)
    response = launch(lab, nnodes=2, nproc_per_node=1)
    assert response.status_code == 201, response.json()
    gang = response.json()["id"]
    wait_until(lambda: RunNode.objects.filter(run_id=gang).exists(), timeout_s=60, message="a first node slot")
    time.sleep(6)  # one slot held, the other missing: nothing starts
    run = Run.objects.get(id=gang)
    assert run.status == RunStatus.QUEUED and run.deliveries == 0, run.status
    assert list(RunNode.objects.filter(run_id=gang).values_list("node_rank", "state")) == [(0, "placing")]
    assert not run_processes(gang)
    lab["client"].force_login(lab["user"])
    page = lab["client"].get(f"/runs/{gang}/")  # the run page shows the gang's placement
    assert "2 nodes: node 0 on node-a@" in page.content.decode() and "(placing)" in page.content.decode()
    Worker.objects.filter(name="node-b@busy").delete()

    workers.start("node-b")
    body = wait_status(lab, gang, FINAL, timeout_s=240)
    assert body["status"] == "succeeded", (body["error"], body["log_tail"])
    wait_until(lambda: set(RunNode.objects.filter(run_id=gang).values_list("state", flat=True)) == {"succeeded"},
               timeout_s=30, message="both nodes succeeded")
    nodes = list(RunNode.objects.filter(run_id=gang).order_by("node_rank"))
    assert len({node.worker_name for node in nodes}) == 2 and len({node.rendezvous for node in nodes}) == 1
    assert nodes[0].rendezvous.startswith("127.0.0.1:")
    assert [node["state"] for node in lab["client"].get(f"/api/runs/{gang}/").json()["nodes"]] == ["succeeded"] * 2
    wait_until(lambda: not run_processes(gang), timeout_s=20, message="no process of the gang left")

    single = launch(lab, nnodes=1, nproc_per_node=2).json()["id"]
    alone = wait_status(lab, single, FINAL, timeout_s=240)
    assert alone["status"] == "succeeded", (alone["error"], alone["log_tail"])
    assert body["step"] == alone["step"] > 0
    for name in ("train_loss", "val_loss", "val_accuracy", "test_loss", "test_accuracy"):
        assert body["summary"][name] == pytest.approx(alone["summary"][name], rel=1e-5, abs=1e-6), name
    two_nodes, one_node = final_weights(gang), final_weights(single)
    assert two_nodes.keys() == one_node.keys()
    for key in one_node:
        assert (two_nodes[key] - one_node[key]).abs().max().item() < 1e-5, key  # measured: 3e-8 (thread counts)


def test_cancel_stops_every_node_of_the_gang(lab, workers):
    workers.start(*NODES)
    workers.wait_online(*NODES)
    run_id = launch(lab, nnodes=2, nproc_per_node=1, epochs=2000).json()["id"]
    wait_until(lambda: Run.objects.get(id=run_id).checkpoints.exists(), timeout_s=180, message="a first checkpoint")
    assert lab["client"].post(f"/api/runs/{run_id}/cancel/").status_code == 200
    body = wait_status(lab, run_id, FINAL, timeout_s=120)
    assert body["status"] == "cancelled", (body["error"], body["log_tail"])
    wait_until(lambda: not run_processes(run_id), timeout_s=30, message="no process of the gang left")
    wait_until(lambda: set(RunNode.objects.filter(run_id=run_id).values_list("state", flat=True)) == {"cancelled"},
               timeout_s=30, message="both nodes cancelled")


def test_a_node_killed_mid_run_fails_the_run_cleanly_naming_the_node(lab, workers):
    workers.start(*NODES)
    workers.wait_online(*NODES)
    run_id = launch(lab, nnodes=2, nproc_per_node=1, epochs=2000).json()["id"]
    wait_until(lambda: Run.objects.get(id=run_id).step > 20, timeout_s=180, message="training under way")
    member = RunNode.objects.get(run_id=run_id, node_rank=1)
    commands = {process: " ".join(process.cmdline()) for process in run_processes(run_id)}
    agents = [process for process, command in commands.items()
              if "torch.distributed.run" in command and "spec-node1.json" in command]
    assert len(agents) == 1, agents
    agents[0].send_signal(signal.SIGKILL)
    body = wait_status(lab, run_id, FINAL, timeout_s=120)
    assert body["status"] == "failed"
    assert f"node 1 on {member.worker_name}" in body["error"] and "SIGKILL" in body["error"], body["error"]
    wait_until(lambda: not run_processes(run_id), timeout_s=30,
               message=f"no process of the gang left: {[p.cmdline() for p in run_processes(run_id)]}")
    states = dict(RunNode.objects.filter(run_id=run_id).values_list("node_rank", "state"))
    assert states == {0: "failed", 1: "failed"}, states


def test_a_node_whose_worker_dies_requeues_the_run_to_resume_on_a_new_gang(lab, workers):
    workers.start(*NODES)
    workers.wait_online(*NODES)
    run_id = launch(lab, nnodes=2, nproc_per_node=1, epochs=2000).json()["id"]
    wait_until(lambda: Run.objects.get(id=run_id).checkpoints.exists(), timeout_s=180, message="a first checkpoint")
    member = RunNode.objects.get(run_id=run_id, node_rank=1)
    doomed = workers.processes[member.worker_name.split("@")[0]]
    os.killpg(doomed.pid, signal.SIGKILL)  # the whole worker, as with a lost machine
    doomed.wait()
    # node 0 sees node 1's heartbeat stop and re-queues the run, which waits for a new gang (one worker is left)
    body = wait_status(lab, run_id, {"queued", *FINAL}, timeout_s=120)
    assert body["status"] == "queued", (body["status"], body["error"])
    assert f"node 1 on {member.worker_name} was lost" in body["error"] and "re-queued" in body["error"]
    assert body["deliveries"] == 1
    wait_until(lambda: not run_processes(run_id), timeout_s=30,
               message=f"no process of the gang left: {[p.cmdline() for p in run_processes(run_id)]}")
    assert lab["client"].post(f"/api/runs/{run_id}/cancel/").json()["status"] == "cancelled"


def test_bad_node_counts_are_refused_naming_the_fleet(lab):
    from django.utils import timezone

    now = timezone.now()
    Queue.objects.create(name="small")  # only these two registered workers consume it
    Worker.objects.create(name="solo@host", hostname="host", queues=["small"], cpu_count=4, started_at=now,
                          last_heartbeat=now)
    Worker.objects.create(name="tiny@host", hostname="host", queues=["small"], cpu_count=1, started_at=now,
                          last_heartbeat=now)
    zero = launch(lab, nnodes=0, nproc_per_node=1, queue="small")
    assert zero.status_code == 400 and "nnodes must be at least 1" in zero.json()["resources"][0]
    too_many = launch(lab, nnodes=3, nproc_per_node=1, queue="small")
    message = too_many.json()["resources"][0]
    assert too_many.status_code == 400 and "solo@host" in message and "tiny@host" in message and "has 2" in message
    too_big = launch(lab, nnodes=2, nproc_per_node=2, queue="small")
    assert too_big.status_code == 400 and "the fleet has 1" in too_big.json()["resources"][0]
    uneven = launch(lab, nnodes=2, nproc_per_node=1, queue="small", batch_size=15)
    assert uneven.status_code == 400 and "2 processes" in uneven.json()["config"][0]
    assert not Run.objects.exists()
