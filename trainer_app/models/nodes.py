"""The nodes of a multi-node run: one row per node slot of its gang (docs/operations.md, multi-node)."""
from __future__ import annotations

from django.db import models

from trainer_app.models.runs import Run


class RunNodeState(models.TextChoices):
    PLACING = "placing", "Placing"      # claimed, waiting for the rest of the gang
    RUNNING = "running", "Running"      # the gang started; this node's torchrun runs
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    STOPPED = "stopped", "Stopped"      # the run ended or moved on without this node (its peer failed, a requeue)


NODE_ENDED_STATES = (RunNodeState.SUCCEEDED, RunNodeState.FAILED, RunNodeState.CANCELLED, RunNodeState.STOPPED)


class RunNode(models.Model):
    """One node slot of a run with `nnodes` > 1, held by one worker. A run starts only when all its slots are
    held by live workers (gang scheduling); node 0 owns the run's lease and hosts the c10d rendezvous, every
    node renews its own heartbeat here so that the others can tell it is alive."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="nodes")
    node_rank = models.PositiveSmallIntegerField(help_text="0 .. nnodes-1; node 0 leads the gang")
    worker = models.ForeignKey("trainer_app.Worker", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="run_nodes")
    worker_name = models.CharField(max_length=255, help_text="Celery node name of the worker holding the slot")
    lease_owner = models.CharField(max_length=255, help_text="the delivery (worker:task id) holding the slot")
    address = models.CharField(max_length=255, help_text="where the other nodes reach this one")
    cuda_visible_devices = models.CharField(max_length=255, blank=True)
    rendezvous = models.CharField(max_length=255, blank=True,
                                  help_text="host:port of the c10d rendezvous, set when the gang starts")
    state = models.CharField(max_length=16, choices=RunNodeState.choices, default=RunNodeState.PLACING)
    exit_code = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    claimed_at = models.DateTimeField(auto_now_add=True)
    heartbeat_at = models.DateTimeField()

    class Meta:
        ordering = ["run", "node_rank"]
        constraints = [
            models.UniqueConstraint(fields=["run", "node_rank"], name="one_node_per_rank"),
            # a worker never holds two slots of one run: the gang needs distinct machines
            models.UniqueConstraint(fields=["run", "worker_name"], name="one_node_per_worker"),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} node {self.node_rank} on {self.worker_name}"
