"""Runs: one training job each, its lifecycle, lease, metrics and checkpoints."""
from __future__ import annotations

import time

from django.conf import settings
from django.db import models

from trainer_app.models.datasets import Dataset
from trainer_app.models.designs import ModelDesign
from trainer_app.models.projects import Project


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    STARTING = "starting", "Starting"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    LOST = "lost", "Lost"
    PRUNED = "pruned", "Pruned"


ACTIVE_STATUSES = (RunStatus.STARTING, RunStatus.RUNNING)
FINAL_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.PRUNED)


class RunKind(models.TextChoices):
    RUN = "run", "Run"
    TRIAL = "trial", "Sweep trial"
    LR_FINDER = "lr_finder", "Learning-rate finder"


QUEUE_ORDER = ("priority", "queue_order", "id")  # the order in which a queue's waiting runs start


def queue_order_now() -> int:
    """A new run's place among the runs of its priority in its queue: its launch time in microseconds, so that
    queued runs start by priority, then age, until an admin moves one (trainer_app/services/steering.py)."""
    return time.time_ns() // 1000


class QueueResourceClass(models.TextChoices):
    CPU = "cpu", "CPU"
    GPU = "gpu", "GPU"


class QueueManager(models.Manager):
    """Deleted queues keep their finished runs' history but are gone from every list and launch form
    (a run reaches its queue through the base manager, which still sees them)."""

    def get_queryset(self):
        return super().get_queryset().filter(deleted_at__isnull=True)


class Queue(models.Model):
    """A named Celery queue admins can pause, resume, reprioritise, cap and restrict to project roles."""

    name = models.SlugField(max_length=64, unique=True)
    description = models.CharField(max_length=255, blank=True)
    resource_class = models.CharField(max_length=8, choices=QueueResourceClass.choices,
                                      default=QueueResourceClass.CPU)
    paused = models.BooleanField(default=False)
    priority = models.PositiveSmallIntegerField(default=5, help_text="0 (highest) .. 9 (lowest)")
    max_concurrent = models.PositiveIntegerField(null=True, blank=True,
                                                 help_text="most runs starting or running at once; empty = no limit")
    allowed_roles = models.JSONField(default=list, blank=True,
                                     help_text="project roles that may launch on it (analyst, lead, admin); "
                                               "empty = everyone")
    preemptible = models.BooleanField(default=False,
                                      help_text="a run of higher priority that cannot start may stop a run of this "
                                                "queue: it checkpoints, goes back to the queue and resumes later")
    created_at = models.DateTimeField(auto_now_add=True)
    deleted_at = models.DateTimeField(null=True, blank=True,
                                      help_text="set when an admin deleted a queue that finished runs still name")

    objects = QueueManager()
    all_objects = models.Manager()

    class Meta:
        ordering = ["priority", "name"]
        base_manager_name = "all_objects"

    def __str__(self) -> str:
        return self.name


class Run(models.Model):
    """A training job. Liveness is a lease in SQL: the supervising task renews `heartbeat_at`; the
    reaper re-queues a run whose lease expired, counting deliveries (DESIGN.md)."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="runs")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="runs")
    design = models.ForeignKey(ModelDesign, on_delete=models.PROTECT, related_name="runs")
    name = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=16, choices=RunKind.choices, default=RunKind.RUN)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    error = models.TextField(blank=True)
    config = models.JSONField(default=dict, help_text="training settings as validated")
    resources = models.JSONField(default=dict, help_text="nproc_per_node, gpus_per_node, nnodes")
    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, related_name="runs")
    priority = models.PositiveSmallIntegerField(default=5)
    queue_order = models.BigIntegerField(default=queue_order_now,
                                         help_text="place among the queued runs of the same priority in its queue "
                                                   "(lower starts first): the launch time, changed when an admin "
                                                   "moves the run")
    fine_tuned_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="fine_tuned_runs")
    init = models.JSONField(default=dict, blank=True, help_text="weights to start from and layers to freeze")
    init_weights = models.ForeignKey("trainer_app.WeightsFile", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="runs", help_text="an uploaded file this run was fine-tuned from")
    model_spec = models.JSONField(default=dict, blank=True,
                                  help_text="the model this run trains when it is not its design's own (a sweep's "
                                            "design space); empty = the design's spec")
    sweep = models.ForeignKey("trainer_app.Sweep", null=True, blank=True, on_delete=models.CASCADE,
                              related_name="trials")
    trial_number = models.PositiveIntegerField(null=True, blank=True, help_text="the Optuna trial this run is")

    # lifecycle and lease
    cancel_requested = models.BooleanField(default=False)
    requeue_requested = models.BooleanField(default=False,
                                            help_text="with cancel_requested: once the run has checkpointed and "
                                                      "stopped, it goes back to its queue (preempted or requeued by "
                                                      "an admin) instead of ending cancelled")
    preempted_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                     help_text="the run of higher priority that last preempted this one")
    preempted_at = models.DateTimeField(null=True, blank=True)
    preemptions = models.PositiveIntegerField(default=0, help_text="how many times it was preempted")
    lease_owner = models.CharField(max_length=255, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, db_index=True)
    deliveries = models.PositiveIntegerField(default=0)
    worker = models.ForeignKey("trainer_app.Worker", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    exit_code = models.IntegerField(null=True, blank=True)
    log_tail = models.JSONField(default=list, help_text="last log lines, kept for failed runs")
    stream_position = models.CharField(max_length=64, default="0-0",
                                       help_text="last Redis Stream entry persisted to SQL")

    # results
    summary = models.JSONField(default=dict, help_text="final value of each metric")
    config_key = models.CharField(max_length=40, blank=True, db_index=True,
                                  help_text="hash of dataset, design and config without the seed: runs that "
                                            "differ only by seed share it (leaderboard seed groups)")
    confusion_matrix = models.JSONField(default=dict, blank=True, help_text="{split, labels, matrix} of the test split")
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    epoch = models.PositiveIntegerField(default=0)

    # organisation
    notes = models.TextField(blank=True)
    starred = models.BooleanField(default=False)
    archived = models.BooleanField(default=False)

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["project", "status"]),
                   # the order in which a queue's waiting runs start (services/steering.py)
                   models.Index(fields=["queue", "priority", "queue_order", "id"], name="run_queued_order",
                                condition=models.Q(status="queued"))]
        constraints = [models.UniqueConstraint(fields=["sweep", "trial_number"], name="one_run_per_trial")]

    def __str__(self) -> str:
        return self.name or f"run {self.pk}"

    @property
    def effective_model_spec(self) -> dict:
        return self.model_spec or self.design.spec

    @property
    def tags(self) -> list[str]:
        return [tag.name for tag in self.tag_set.all()]


class MetricPoint(models.Model):
    """One value of one metric at one global step. (run, name, step) is unique: a redelivered or
    resumed run that sends a step again replaces the point, never duplicates it."""

    # no index of its own: the unique (run, name, step) index leads with run (measured: a third of insert time)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="points", db_index=False)
    name = models.CharField(max_length=64)
    step = models.BigIntegerField()
    value = models.FloatField()
    epoch = models.FloatField(null=True)
    time = models.FloatField(null=True, help_text="seconds since the epoch, when the engine measured it")

    class Meta:
        # No `include=["value"]` here, though it would make reading a series an index-only scan on
        # PostgreSQL (1M points: 407 -> 251 ms): other databases drop a constraint that has one.
        constraints = [models.UniqueConstraint(fields=["run", "name", "step"], name="one_point_per_step")]


class RunTag(models.Model):
    """A label on a run ("baseline", "paper"), for filtering and bulk actions."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="tag_set")
    name = models.CharField(max_length=64, db_index=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="one_tag_per_run")]


class RunLog(models.Model):
    """A log line the engine sent, kept so that a finished run's page shows its log like a live one."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="log_lines")
    entry = models.CharField(max_length=32, help_text="Redis Stream entry id: orders lines and deduplicates")
    time = models.FloatField(null=True)
    level = models.CharField(max_length=16, default="info")
    message = models.TextField()

    class Meta:
        ordering = ["run", "entry"]
        constraints = [models.UniqueConstraint(fields=["run", "entry"], name="one_log_line_per_entry")]


class MetricRollup(models.Model):
    """A long series' extremes per block of ROLLUP_STEPS steps, kept by the persister beside its points, so
    that a chart of a million points reads a few thousand rows instead of a million
    (trainer_app/selectors/metrics.py; benchmarks/bench_downsample.py)."""

    ROLLUP_STEPS = 256

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="rollups", db_index=False)
    name = models.CharField(max_length=64)
    block = models.BigIntegerField(help_text="step // ROLLUP_STEPS")
    count = models.IntegerField(help_text="points in the block")
    min_step = models.BigIntegerField()
    min_value = models.FloatField()
    max_step = models.BigIntegerField()
    max_value = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "name", "block"], name="one_rollup_per_block")]


class RunMetricManager(models.Manager):
    def create_for(self, run: Run, **fields) -> "RunMetric":
        """A summary of ``run`` with the run's copied columns (dataset, project, config_key, archived) filled in."""
        return self.create(run=run, dataset_id=run.dataset_id, project_id=run.project_id, config_key=run.config_key,
                           archived=run.archived, **fields)


class RunMetric(models.Model):
    """Per run and metric: last, min and max, kept by the persister so that leaderboards and sorted run
    lists over 100,000 runs read one indexed row per run instead of scanning points."""

    objects = RunMetricManager()

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metric_summaries")
    dataset_id = models.BigIntegerField(db_index=True)
    project_id = models.BigIntegerField()
    # copies of the run's, so that leaderboards filter and group summaries without joining 100,000 runs
    config_key = models.CharField(max_length=40, blank=True, default="")
    archived = models.BooleanField(default=False)
    name = models.CharField(max_length=64)
    last = models.FloatField()
    last_step = models.BigIntegerField()
    min = models.FloatField()
    max = models.FloatField()
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="one_summary_per_metric")]
        # `include` (PostgreSQL): leaderboards filter (project, archived), group (config_key) and rank by
        # index-only scans of one index, with no join to the runs (100k runs: benchmarks/README.md)
        indexes = [
            models.Index(fields=["dataset_id", "name", "last"], include=["run", "project_id", "archived", "config_key"],
                         name="runmetric_board_last"),
            models.Index(fields=["dataset_id", "name", "min"], include=["run", "project_id", "archived", "config_key"],
                         name="runmetric_board_min"),
            models.Index(fields=["dataset_id", "name", "max"], include=["run", "project_id", "archived", "config_key"],
                         name="runmetric_board_max"),
            models.Index(fields=["project_id", "name", "last"], name="runmetric_project_last"),
        ]


class LeaderboardBaseline(models.Model):
    """The seed group a lead pinned as the baseline of a dataset's leaderboard for one metric."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    metric = models.CharField(max_length=64)
    config_key = models.CharField(max_length=40)
    pinned_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    pinned_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["dataset", "metric"], name="one_baseline_per_metric")]


class RunFinding(models.Model):
    """A problem the run-health rules saw in a run (trainer_app/run_health.py): overfitting, divergence… once
    per kind, with when it was first and last seen, the numbers behind it, what it means and the fix. Saved
    with save(), so the knowledge graph hears of it (a SHOWED relationship from the run to the concept)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="findings")
    code = models.CharField(max_length=32, help_text="nan, diverging, flat_loss, overfitting, underfitting, input_bound")
    severity = models.CharField(max_length=16, default="warning", help_text="critical, warning or info")
    epoch = models.PositiveIntegerField(null=True, blank=True, help_text="the epoch where it first showed")
    step = models.BigIntegerField(null=True, blank=True)
    details = models.JSONField(default=dict, help_text="evidence (the numbers), explanation, fix")
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "first_seen_at", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "code"], name="one_finding_per_code")]

    def __str__(self) -> str:
        return f"{self.run}: {self.code}"


class Checkpoint(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="checkpoints")
    epoch = models.PositiveIntegerField()
    step = models.PositiveIntegerField()
    path = models.CharField(max_length=500, help_text="weights (.safetensors), relative to MEDIA_ROOT")
    best = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "-step"]
        constraints = [models.UniqueConstraint(fields=["run", "step"], name="one_checkpoint_per_step")]
