"""Sweeps: Optuna studies whose trials are runs (kind = trial) on the fleet (DESIGN.md)."""
from __future__ import annotations

from django.conf import settings
from django.db import models

from trainer_app.models.datasets import Dataset
from trainer_app.models.designs import ModelDesign
from trainer_app.models.projects import Project


class SweepStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    FINISHED = "finished", "Finished"
    STOPPED = "stopped", "Stopped"
    FAILED = "failed", "Failed"


SWEEP_ACTIVE = (SweepStatus.QUEUED, SweepStatus.RUNNING, SweepStatus.PAUSED)
SWEEP_FINAL = (SweepStatus.FINISHED, SweepStatus.STOPPED, SweepStatus.FAILED)


class Sweep(models.Model):
    """One hyperparameter search. The study itself (trials, parameters, values, intermediate values)
    lives in Optuna's RDB storage in the same database; this row holds what Optuna does not store: the
    search space as the user wrote it, the sampler and pruner settings (rebuilt in every process), the
    budget, the parallelism and the sweep's lifecycle."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="sweeps")
    name = models.CharField(max_length=200, blank=True)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="sweeps")
    design = models.ForeignKey(ModelDesign, on_delete=models.PROTECT, related_name="sweeps")
    config = models.JSONField(default=dict, help_text="training settings every trial starts from")
    search_space = models.JSONField(default=dict, help_text="{name: {type, low, high, log, step, choices}}")
    objectives = models.JSONField(default=list, help_text="[{metric, direction}], one or more")
    sampler = models.CharField(max_length=16, default="tpe")
    pruner = models.CharField(max_length=16, default="none")
    n_trials = models.PositiveIntegerField(default=20)
    timeout_s = models.PositiveIntegerField(null=True, blank=True, help_text="total time budget; null = none")
    target_value = models.FloatField(null=True, blank=True, help_text="the sweep ends once a trial reaches it")
    parallelism = models.PositiveIntegerField(default=2)
    max_retries = models.PositiveSmallIntegerField(default=2, help_text="a trial whose run was lost is retried "
                                                                       "at most this many times")
    seed = models.IntegerField(default=0)
    resources = models.JSONField(default=dict)
    queue = models.ForeignKey("trainer_app.Queue", on_delete=models.PROTECT, related_name="sweeps")
    study_name = models.CharField(max_length=100, unique=True)
    warnings = models.JSONField(default=list, blank=True)
    warm_start = models.JSONField(default=list, blank=True, help_text="parameter sets enqueued before the search")

    status = models.CharField(max_length=16, choices=SweepStatus.choices, default=SweepStatus.QUEUED, db_index=True)
    error = models.TextField(blank=True)
    end_reason = models.CharField(max_length=200, blank=True)
    best = models.JSONField(default=dict, blank=True, help_text="cached: {run, value, params, number}")
    counts = models.JSONField(default=dict, blank=True, help_text="cached: trials by state")

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name or f"sweep {self.pk}"

    @property
    def directions(self) -> list[str]:
        return [objective["direction"] for objective in self.objectives]

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1
