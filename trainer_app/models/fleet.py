"""The worker fleet: each Celery worker registers and heartbeats with its hardware."""
from __future__ import annotations

from django.db import models


class WorkerStatus(models.TextChoices):
    ONLINE = "online", "Online"
    DRAINING = "draining", "Draining"
    OFFLINE = "offline", "Offline"


class Worker(models.Model):
    """A Celery worker node as it last reported itself."""

    name = models.CharField(max_length=255, unique=True, help_text="Celery node name, e.g. cpu@host")
    hostname = models.CharField(max_length=255)
    status = models.CharField(max_length=16, choices=WorkerStatus.choices, default=WorkerStatus.ONLINE)
    queues = models.JSONField(default=list)
    pid = models.IntegerField(null=True)
    cpu_count = models.IntegerField(default=0)
    ram_mb = models.IntegerField(default=0)
    gpus = models.JSONField(default=list, help_text="one entry per GPU: name, memory, utilisation")
    software = models.JSONField(default=dict, help_text="versions: python, torch, cuda, celery")
    started_at = models.DateTimeField()
    last_heartbeat = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class WorkerGpuMinute(models.Model):
    """One GPU of one worker over one minute: the history behind the worker page's utilisation-over-time
    chart. Written when a worker's heartbeat opens a new minute, from the last minute's samples (the Redis
    ring the sparklines read); kept FLEET_HISTORY_DAYS days."""

    worker = models.ForeignKey(Worker, on_delete=models.CASCADE, related_name="gpu_minutes")
    gpu_index = models.PositiveSmallIntegerField()
    minute = models.DateTimeField(help_text="the minute's start (UTC)")
    samples = models.PositiveSmallIntegerField()
    utilization_mean = models.FloatField(null=True)
    utilization_max = models.FloatField(null=True)
    memory_used_mb_max = models.FloatField(null=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["worker", "gpu_index", "minute"], name="one_row_per_gpu_minute")]
        indexes = [models.Index(fields=["minute"], name="workergpuminute_minute")]
