"""Multi-node runs on the worker side: hold a node slot until the gang is complete, then run this node's
`torchrun` on the gang's c10d rendezvous, and supervise it.

Node 0's delivery is the run's supervisor (`GangLeaderSupervisor`, a `RunSupervisor`: the run's lease, its
events, cancel, the outcome) and hosts the rendezvous store; it also watches the other nodes, and when one
fails or is lost it stops its own torchrun (torchrun's own rendezvous and the collectives usually error out
first) and records which node it was. Every other node's delivery (`GangMemberSupervisor`) only runs its
torchrun: it renews its slot's heartbeat, relays a cancel, reports how its torchrun ended, and stops it when
the run ends or moves on without it. Which node holds global rank 0 is torch's choice (the c10d rendezvous
orders nodes by address and process id); that rank writes the metrics, checkpoints and the result file,
which is why the run's directory must be shared storage across nodes (docs/operations.md).
"""
from __future__ import annotations

import collections
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections

from trainer_app.models import ACTIVE_STATUSES, Run, RunNode, RunNodeState, RunStatus
from trainer_app.runner import (LOG_TAIL_LINES, POLL_SECONDS, RunSupervisor, _die_with_parent, _engine_error,
                                engine_environment)
from trainer_app.services import nodes as node_services
from trainer_app.services import runs as run_services
from trainer_app.services.steering import run_delivered_elsewhere
from trainer_app.specs import run_directory, run_spec

logger = logging.getLogger(__name__)
PEER_EXIT_GRACE_SECONDS = 10  # a peer failed: torchrun usually stops by itself within this; then SIGKILL
MEMBER_END_GRACE_SECONDS = 20  # the run ended: a member's torchrun finishes its exit barrier within this
PURGE_EVERY_SECONDS = 5


def gang_torchrun_command(spec_path: Path, *, nproc: int, nnodes: int, node: RunNode) -> list[str]:
    """torchrun for one node of the gang: the same c10d rendezvous id and endpoint on every node; node 0
    hosts the rendezvous store (`is_host`), so the gang does not depend on which agent starts first."""
    conf = f"is_host={1 if node.node_rank == 0 else 0},join_timeout={settings.RUN_GANG_TIMEOUT_SECONDS}"
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(nnodes), "--nproc-per-node", str(nproc),
            "--rdzv-backend", "c10d", "--rdzv-endpoint", node.rendezvous, "--rdzv-id", f"run-{node.run_id}",
            "--rdzv-conf", conf, "--local-addr", node.address, "--max-restarts", "0",
            "-m", "trainer_app.engine", str(spec_path)]


def gang_execute(task, run_id: int) -> str:
    """One delivery of a multi-node run (called by the run_execute task): claim a node slot, wait for the
    gang, run this node. Retries (the message comes back) when no slot is free here or the gang did not form."""
    worker_name = task.request.hostname
    owner = f"{worker_name}:{task.request.id}"
    queue_name = (task.request.delivery_info or {}).get("routing_key")
    node = node_services.run_node_claim(run_id=run_id, owner=owner, worker_name=worker_name, queue_name=queue_name)
    if node is None:
        if run_delivered_elsewhere(run_id=run_id, queue_name=queue_name):
            return "moved"  # an admin moved it after the task's first check: its new queue has messages of its own
        if Run.objects.filter(id=run_id, status=RunStatus.QUEUED, cancel_requested=False).exists():
            raise task.retry(countdown=random.uniform(2, 6), max_retries=None)
        return "not-claimed"
    logger.info("run %s: node slot %s claimed on %s; waiting for the gang", run_id, node.node_rank, worker_name)
    outcome = gang_wait(node, timeout_s=settings.RUN_GANG_TIMEOUT_SECONDS)
    if outcome == "timeout":
        logger.info("run %s: the gang did not form within %s s; slot %s given back", run_id,
                    settings.RUN_GANG_TIMEOUT_SECONDS, node.node_rank)
        raise task.retry(countdown=random.uniform(1, 5), max_retries=None)
    if outcome != "start":
        return "not-started"
    node.refresh_from_db()
    if node.node_rank == 0:
        return GangLeaderSupervisor(run_id, owner, node).execute()
    return GangMemberSupervisor(run_id, node).execute()


def gang_wait(node: RunNode, *, timeout_s: float) -> str:
    """Hold the slot, heartbeating, until the gang starts ("start"), the run leaves the queue or the slot is
    taken away ("gone"), or timeout_s passes ("timeout", the slot given back)."""
    deadline = time.monotonic() + timeout_s
    last_purge = time.monotonic()
    while True:
        close_old_connections()
        current = node_services.run_node_heartbeat(node=node)
        if current is None:
            return "gone"
        if node.node_rank == 0 and current.state == RunNodeState.PLACING and node_services.run_gang_start(node=node):
            return "start"
        run = Run.objects.filter(id=node.run_id).values("status", "cancel_requested").first()
        if current.state == RunNodeState.RUNNING and current.rendezvous and run and run["status"] in ACTIVE_STATUSES:
            return "start"
        if run is None or run["status"] != RunStatus.QUEUED or run["cancel_requested"]:
            if node_services.run_node_release(node=node):
                return "gone"
            continue
        if time.monotonic() > deadline:
            if node_services.run_node_release(node=node):
                return "timeout"
            continue  # the gang started meanwhile
        if time.monotonic() - last_purge > PURGE_EVERY_SECONDS:
            node_services.run_nodes_purge(run_id=node.run_id)
            last_purge = time.monotonic()
        time.sleep(POLL_SECONDS)


def _describe_exit(code: int, tail: list[str]) -> str:
    if code < 0:
        return f"its torchrun was killed by {signal.Signals(-code).name}"
    detail = _engine_error(tail)
    return f"its torchrun exited with code {code}" + (f" ({detail})" if detail else "")


class GangLeaderSupervisor(RunSupervisor):
    """Node 0: the run's supervisor, on the gang's rendezvous, watching the other nodes."""

    def __init__(self, run_id: int, owner: str, node: RunNode):
        super().__init__(run_id, owner)
        self.node = node
        self.peer_problem: node_services.PeerProblem | None = None
        self.peer_problem_at: float | None = None
        self.peers_ended_at: float | None = None
        self.killed_for_peers = False  # this supervisor killed its torchrun because of the other nodes

    def _command(self, spec_path: Path, nproc: int) -> list[str]:
        nnodes = node_services.run_nnodes(Run.objects.values_list("resources", flat=True).get(id=self.run_id))
        return gang_torchrun_command(spec_path, nproc=nproc, nnodes=nnodes, node=self.node)

    def _beat(self, code: int | None) -> None:
        node_services.run_node_heartbeat(node=self.node)
        if self.peer_problem is None:
            self.peer_problem = node_services.gang_peer_problem(node=self.node)
            if self.peer_problem is not None:
                self.peer_problem_at = time.monotonic()
                logger.warning("run %s: %s; stopping this node", self.run_id, self.peer_problem.message)
        elif code is None and time.monotonic() - self.peer_problem_at > PEER_EXIT_GRACE_SECONDS:
            self.killed_for_peers = True
            self._stop(signal.SIGKILL)
        if code is None and self.peers_ended_at is None and node_services.gang_peers_ended(node=self.node):
            self.peers_ended_at = time.monotonic()
        elif code is None and self.peers_ended_at is not None \
                and time.monotonic() - self.peers_ended_at > PEER_EXIT_GRACE_SECONDS:
            # every other node is done: torchrun would wait in its exit barrier for agents that left (300 s)
            self.killed_for_peers = True
            self._stop(signal.SIGKILL)

    def _await_peer_reports(self) -> None:
        """After a failure here, give the other nodes the time to say how they ended (or to be seen lost),
        renewing the run's lease meanwhile, so that the run's error names the node that caused it."""
        deadline = time.monotonic() + settings.RUN_LEASE_SECONDS + 2 * settings.RUN_HEARTBEAT_SECONDS
        while self.peer_problem is None and time.monotonic() < deadline:
            close_old_connections()
            run_services.run_heartbeat(run_id=self.run_id, owner=self.owner)
            self.peer_problem = node_services.gang_peer_problem(node=self.node)
            if self.peer_problem is None and node_services.gang_peers_ended(node=self.node):
                return
            time.sleep(POLL_SECONDS)

    def _finish(self, code: int) -> str:
        from trainer_app.engine import exit_codes

        result = exit_codes.read_result(self.result_path) or {}
        cancel_asked = self.terminated_at is not None or Run.objects.filter(id=self.run_id,
                                                                           cancel_requested=True).exists()
        # Ranks stop as if cancelled when one node's torchrun gets SIGTERM because its worker died (the
        # parent-death signal): without a cancel, that is a lost node, not a cancel.
        clean = result.get("exit_code") in (exit_codes.SUCCEEDED, exit_codes.PRUNED) or cancel_asked
        if not clean:
            self._await_peer_reports()
        if result.get("exit_code") == exit_codes.SUCCEEDED:
            # Rank 0 writes its result last, after every rank finished the test split: the run is done even
            # if a rank crashed in its teardown or an agent's exit barrier failed (its torchrun then exits 1).
            code = 0
        problem = self.peer_problem
        if problem is not None and problem.lost and code != 0:
            node_services.run_node_finish(node=self.node, state=RunNodeState.STOPPED, exit_code=code,
                                          error=problem.message)
            return node_services.run_gang_requeue(run_id=self.run_id, owner=self.owner, reason=problem.message)
        status = super()._finish(code)
        cause = problem.message if problem is not None and problem.blamed else None
        if cause is None and code < 0 and not self.killed_for_peers and self.terminated_at is None:
            cause = f"node 0 on {self.node.worker_name} failed: {_describe_exit(code, [])}"  # this node died first
        if status == RunStatus.FAILED and cause:
            error = Run.objects.values_list("error", flat=True).get(id=self.run_id)
            Run.objects.filter(id=self.run_id, status=RunStatus.FAILED).update(
                error=f"{cause}; the other nodes stopped ({error})")
        node_state = {RunStatus.SUCCEEDED: RunNodeState.SUCCEEDED, RunStatus.CANCELLED: RunNodeState.CANCELLED,
                      RunStatus.FAILED: RunNodeState.FAILED}.get(status, RunNodeState.STOPPED)
        error = _describe_exit(code, list(self.log_tail)) if node_state == RunNodeState.FAILED else ""
        node_services.run_node_finish(node=self.node, state=node_state, exit_code=code, error=error)
        return status


class GangMemberSupervisor:
    """Node 1 and up: runs this node's torchrun, heartbeats its slot, relays a cancel, reports its end, and
    stops it when the run ends or moves on without it. It never touches the run's lease or outcome."""

    def __init__(self, run_id: int, node: RunNode):
        self.run_id = run_id
        self.node = node
        self.log_tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self.process: subprocess.Popen | None = None
        self.result_path: Path | None = None
        self.leader = ""
        self.cancelled = False
        self.stopped = False

    def execute(self) -> str:
        run = Run.objects.select_related("dataset", "design").get(id=self.run_id)
        self.leader = run.lease_owner
        directory = run_directory(run)
        directory.mkdir(parents=True, exist_ok=True)
        spec_path = directory / f"spec-node{self.node.node_rank}.json"  # node 0 writes spec.json: no shared writes
        spec = run_spec(run)
        self.result_path = Path(spec["result_file"])
        spec_path.write_text(json.dumps(spec, indent=2))
        nproc = int(run.resources.get("nproc_per_node", 1))
        command = gang_torchrun_command(spec_path, nproc=nproc, nnodes=node_services.run_nnodes(run.resources),
                                        node=self.node)
        self.process = subprocess.Popen(
            command, cwd=str(settings.BASE_DIR), env=engine_environment(nproc, self.node.cuda_visible_devices),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent,
        )
        reader = threading.Thread(target=self._read_output, args=(directory / f"engine-node{self.node.node_rank}.log",),
                                  daemon=True)
        reader.start()
        code = self._supervise()
        reader.join(timeout=10)
        return self._report(code)

    def _read_output(self, log_path: Path) -> None:
        with open(log_path, "ab") as log:
            for line in self.process.stdout:
                log.write(line)
                self.log_tail.append(line.decode(errors="replace").rstrip())

    def _supervise(self) -> int:
        last_beat, ending_since = 0.0, None
        while True:
            code = self.process.poll()
            now = time.monotonic()
            if code is None and now - last_beat >= settings.RUN_HEARTBEAT_SECONDS:
                last_beat = now
                close_old_connections()
                ours = node_services.run_node_heartbeat(node=self.node) is not None
                run = Run.objects.filter(id=self.run_id).values("status", "lease_owner", "cancel_requested").first()
                moved_on = not ours or run is None or run["status"] == RunStatus.QUEUED \
                    or (run["status"] in ACTIVE_STATUSES and run["lease_owner"] != self.leader)
                if moved_on:  # re-queued or taken by another gang: this node's work is void
                    logger.warning("run %s: node %s is no longer part of the run's gang; stopping it", self.run_id,
                                   self.node.node_rank)
                    self._stop(signal.SIGKILL)
                elif run["status"] not in ACTIVE_STATUSES:  # ended: let torchrun finish its exit barrier
                    ending_since = ending_since or now
                    if now - ending_since > MEMBER_END_GRACE_SECONDS:
                        self._stop(signal.SIGKILL)
                elif run["cancel_requested"] and not self.cancelled:
                    logger.info("run %s: cancel requested; asking node %s's ranks to stop", self.run_id,
                                self.node.node_rank)
                    self.cancelled = True
                    self._signal(signal.SIGTERM)
            if code is not None:
                self._signal(signal.SIGKILL)  # leave no rank behind, whatever torchrun did
                return code
            time.sleep(POLL_SECONDS)

    def _signal(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def _stop(self, signum: int) -> None:
        self.stopped = True
        self._signal(signum)

    def _report(self, code: int) -> str:
        from trainer_app.engine import exit_codes

        result = exit_codes.read_result(self.result_path) or {}
        if code == 0:
            state, error = RunNodeState.SUCCEEDED, ""
        elif result.get("exit_code") == exit_codes.SUCCEEDED:  # the run is done; this node failed in its teardown
            state = RunNodeState.SUCCEEDED
            error = f"after the run finished, {_describe_exit(code, list(self.log_tail))}"
        elif self.cancelled or Run.objects.filter(id=self.run_id, status=RunStatus.CANCELLED).exists():
            state, error = RunNodeState.CANCELLED, ""
        elif self.stopped:
            state, error = RunNodeState.STOPPED, "stopped: the run ended or moved on without this node"
        else:
            state, error = RunNodeState.FAILED, _describe_exit(code, list(self.log_tail))
        node_services.run_node_finish(node=self.node, state=state, exit_code=code, error=error)
        logger.info("run %s: node %s ended %s %s", self.run_id, self.node.node_rank, state, error)
        return f"node-{state}"
