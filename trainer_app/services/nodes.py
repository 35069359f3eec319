"""Gang scheduling of multi-node runs: node slots, the gang's start, and what each node knows of the others.

A run with `nnodes` = N is sent as N task messages (`run_enqueue`). Each delivery claims one node slot, a
`RunNode` row, on its own worker (never two slots of one run on one worker) and waits; the delivery holding
node 0 starts the gang once all N slots are held by live deliveries: the run becomes `starting` under node 0's
lease, and every node gets the c10d rendezvous endpoint (node 0's address and a free port). A delivery that
waited `RUN_GANG_TIMEOUT_SECONDS` in vain gives its slot back and comes back later, so that two half-placed gangs
never hold their workers forever. Every node renews its own heartbeat; node 0 watches the others (trainer_app/
gang.py). The run's own lease, reaper and delivery count are the single-node rules (services/runs.py).
"""
from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from trainer_app.models import ACTIVE_STATUSES, NODE_ENDED_STATES, Queue, Run, RunNode, RunNodeState, RunStatus, Worker

logger = logging.getLogger(__name__)


def run_nnodes(resources: dict | None) -> int:
    return int((resources or {}).get("nnodes") or 1)


def node_address() -> str:
    """Where the other nodes of a gang reach this worker (TRAINYARD_NODE_ADDRESS, else this host's name)."""
    return settings.NODE_ADDRESS or socket.getfqdn()


def _stale_before():
    return timezone.now() - timedelta(seconds=settings.RUN_LEASE_SECONDS)


def node_devices_held(worker_id: int) -> set[str]:
    """GPU indices this worker gives to the node slots it holds, placing or running (services.runs._place_gpus)."""
    held: set[str] = set()
    rows = RunNode.objects.filter(worker_id=worker_id, run__status__in=(RunStatus.QUEUED, *ACTIVE_STATUSES)) \
        .exclude(state__in=NODE_ENDED_STATES).values_list("cuda_visible_devices", flat=True)
    for devices in rows:
        held |= {part for part in (devices or "").split(",") if part}
    return held


def _purge_nodes(run: Run) -> int:
    """Drop the slots of a queued run that no live delivery holds: those of an earlier gang (the run was
    re-queued or resumed) and those whose delivery stopped heartbeating while it waited (its worker died,
    taking its task message along). Returns how many of the latter went, so the caller can send as many
    messages again: the gang needs N deliveries."""
    RunNode.objects.filter(run=run).exclude(state=RunNodeState.PLACING).delete()
    return RunNode.objects.filter(run=run, state=RunNodeState.PLACING, heartbeat_at__lt=_stale_before()).delete()[0]


def _send_again(run: Run, count: int) -> None:
    if not count:
        return
    from trainer_app.tasks import run_execute

    queue_name, priority, run_id = run.queue.name, run.priority, run.pk
    logger.warning("run %s: %s node slot(s) were held by deliveries that died; sending them again", run_id, count)

    def send() -> None:
        for _ in range(count):
            run_execute.apply_async(args=[run_id], queue=queue_name, priority=priority)

    transaction.on_commit(send)


def run_node_claim(*, run_id: int, owner: str, worker_name: str, queue_name: str | None = None) -> RunNode | None:
    """Take a free node slot of a queued multi-node run for this delivery, or None: the run is not queued
    (cancelled, started, finished), it is no longer in `queue_name` (the queue the delivery came from: an admin
    moved it), all its slots are held, this worker already holds one, or this worker has too few free GPUs.
    The run's row lock serialises the claims of one run, and its moves."""
    try:
        return _claim(run_id=run_id, owner=owner, worker_name=worker_name, queue_name=queue_name)
    except IntegrityError:  # another delivery took that rank at the same instant (SQLite has no row locks)
        return None


def _claim(*, run_id: int, owner: str, worker_name: str, queue_name: str | None) -> RunNode | None:
    from trainer_app.services.runs import _place_gpus

    worker = Worker.objects.filter(name=worker_name).first()
    with transaction.atomic():
        run = (Run.objects.select_for_update().select_related("queue")
               .filter(id=run_id, status=RunStatus.QUEUED, cancel_requested=False).first())
        if run is None or (queue_name and run.queue.name != queue_name):
            return None
        _send_again(run, _purge_nodes(run))
        nnodes = run_nnodes(run.resources)
        held = list(RunNode.objects.filter(run=run))
        if len(held) >= nnodes or any(node.worker_name == worker_name for node in held):
            return None
        devices = ""
        needed = int((run.resources or {}).get("gpus_per_node") or 0)
        if needed:
            devices = _place_gpus(worker, needed)
            if devices is None:
                return None
        rank = min(set(range(nnodes)) - {node.node_rank for node in held})
        return RunNode.objects.create(run=run, node_rank=rank, worker=worker, worker_name=worker_name,
                                      lease_owner=owner, address=node_address(), cuda_visible_devices=devices,
                                      heartbeat_at=timezone.now())


def run_node_heartbeat(*, node: RunNode) -> RunNode | None:
    """Renew this node's heartbeat; its row as it is now, or None once the slot is no longer this delivery's
    (given back, or dropped by a later gang of the same run)."""
    if not RunNode.objects.filter(pk=node.pk, lease_owner=node.lease_owner).update(heartbeat_at=timezone.now()):
        return None
    return RunNode.objects.get(pk=node.pk)


def run_nodes_purge(*, run_id: int) -> None:
    """While a gang forms: drop the slots of deliveries that died waiting (and send their messages again)."""
    with transaction.atomic():
        run = Run.objects.select_for_update().select_related("queue").filter(id=run_id,
                                                                               status=RunStatus.QUEUED).first()
        if run is not None:
            _send_again(run, _purge_nodes(run))


def run_node_release(*, node: RunNode) -> bool:
    """Give a placing slot back (the gang did not form in time, or the run left the queue). False when the
    gang started meanwhile: then this node must run."""
    with transaction.atomic():
        Run.objects.select_for_update().filter(id=node.run_id).first()
        if RunNode.objects.filter(pk=node.pk, state=RunNodeState.RUNNING).exists() and \
                Run.objects.filter(id=node.run_id, status__in=ACTIVE_STATUSES).exists():
            return False
        RunNode.objects.filter(pk=node.pk, state=RunNodeState.PLACING).delete()
        return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def run_gang_start(*, node: RunNode) -> bool:
    """Node 0 starts the gang when every slot is held by a live delivery: the run becomes `starting` under
    node 0's lease (one more delivery counted, as a single-node claim does) and every node gets the c10d
    rendezvous endpoint, node 0's address and a free port there. False while the gang is incomplete, the
    run's queue is paused or at its max_concurrent, or the run left the queue."""
    if node.node_rank != 0:
        raise ValueError("only node 0 starts its gang")
    now = timezone.now()
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(id=node.run_id, status=RunStatus.QUEUED,
                                                     cancel_requested=False).first()
        if run is None:
            return False
        live = RunNode.objects.filter(run=run, state=RunNodeState.PLACING, heartbeat_at__gte=_stale_before())
        nnodes = run_nnodes(run.resources)
        if live.count() != nnodes or not live.filter(pk=node.pk).exists():
            return False
        limit, paused = Queue.all_objects.select_for_update().values_list("max_concurrent", "paused") \
            .get(pk=run.queue_id)
        if paused:
            return False
        if limit is not None and Run.objects.filter(queue_id=run.queue_id, status__in=ACTIVE_STATUSES).count() >= limit:
            return False
        endpoint = f"{node.address}:{_free_port()}"
        live.update(state=RunNodeState.RUNNING, rendezvous=endpoint, heartbeat_at=now)
        Run.objects.filter(pk=run.pk).update(
            status=RunStatus.STARTING, lease_owner=node.lease_owner, heartbeat_at=now,
            deliveries=F("deliveries") + 1, worker_id=node.worker_id, error="", started_at=now,
            resources={**run.resources, "cuda_visible_devices": node.cuda_visible_devices})
    logger.info("run %s: gang of %s nodes complete; rendezvous at %s", node.run_id, nnodes, endpoint)
    return True


def run_node_finish(*, node: RunNode, state: str, exit_code: int | None = None, error: str = "") -> None:
    """Record how this node's torchrun ended (node 0 reads the others' to explain a failure)."""
    RunNode.objects.filter(pk=node.pk, lease_owner=node.lease_owner).update(
        state=state, exit_code=exit_code, error=error[:2000], heartbeat_at=timezone.now())


@dataclass
class PeerProblem:
    """Another node of the gang failed or was lost."""

    node_rank: int
    worker_name: str
    reason: str
    lost: bool  # its delivery stopped heartbeating (a lost worker): the run is re-queued, as a lost single node
    blamed: bool  # it died first (a signal, a lost worker), so it caused the others' failure

    @property
    def message(self) -> str:
        return f"node {self.node_rank} on {self.worker_name} {self.reason}"


def gang_peer_problem(*, node: RunNode) -> PeerProblem | None:
    """The first other node of the gang that failed or stopped heartbeating, if any."""
    cutoff = _stale_before()
    for peer in RunNode.objects.filter(run_id=node.run_id).exclude(pk=node.pk).order_by("node_rank"):
        if peer.state == RunNodeState.FAILED:
            killed = (peer.exit_code or 0) < 0 or "signal" in peer.error.lower()
            return PeerProblem(peer.node_rank, peer.worker_name, f"failed: {peer.error}", lost=False, blamed=killed)
        if peer.state in (RunNodeState.RUNNING, RunNodeState.PLACING) and peer.heartbeat_at < cutoff:
            return PeerProblem(peer.node_rank, peer.worker_name,
                               f"was lost: its worker sent no heartbeat for {settings.RUN_LEASE_SECONDS} s",
                               lost=True, blamed=True)
    return None


def gang_peers_ended(*, node: RunNode) -> bool:
    return not RunNode.objects.filter(run_id=node.run_id).exclude(pk=node.pk) \
        .exclude(state__in=NODE_ENDED_STATES).exists()


def run_gang_requeue(*, run_id: int, owner: str, reason: str) -> str:
    """A node of the gang was lost with its worker: re-queue the run to resume from its checkpoint on a new
    gang, as the reaper does for a lost single node, or fail it once it was lost MAX_DELIVERIES times."""
    from trainer_app.services.runs import MAX_DELIVERIES, run_enqueue, run_finish

    run = Run.objects.select_related("queue").get(id=run_id)
    if run.deliveries >= MAX_DELIVERIES:
        run_finish(run_id=run_id, owner=owner, status=RunStatus.FAILED,
                   error=f"{reason}; lost {run.deliveries} times, so it is not re-queued again")
        return RunStatus.FAILED
    with transaction.atomic():
        requeued = Run.objects.filter(id=run_id, lease_owner=owner, status__in=ACTIVE_STATUSES).update(
            status=RunStatus.QUEUED, lease_owner="", error=f"{reason}; re-queued to resume from its checkpoint")
        if requeued != 1:
            return "lease-lost"
        run.refresh_from_db()
        run_enqueue(run=run)
    logger.warning("run %s: %s; re-queued (delivery %s)", run_id, reason, run.deliveries)
    return RunStatus.QUEUED
