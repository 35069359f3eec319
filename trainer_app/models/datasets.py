"""Datasets: uploaded files converted once into the canonical format, versioned by name."""
from __future__ import annotations

from django.conf import settings
from django.db import models

from trainer_app.models.projects import Project


class DatasetStatus(models.TextChoices):
    PROCESSING = "processing", "Processing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class DatasetSource(models.TextChoices):
    UPLOAD = "upload", "Upload"
    DIRECTORY = "directory", "Registered directory"
    SAMPLE = "sample", "Sample dataset"


class Dataset(models.Model):
    """One version of a named dataset in a project. Uploading under an existing name makes the next
    version, linked to the previous one. A version used by a run is locked: it never changes again."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="datasets")
    name = models.CharField(max_length=120)
    version = models.PositiveIntegerField(default=1)
    previous = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="next_versions")
    status = models.CharField(max_length=16, choices=DatasetStatus.choices, default=DatasetStatus.PROCESSING)
    error = models.TextField(blank=True)
    progress = models.FloatField(default=0.0, help_text="0..1 while processing")
    progress_message = models.CharField(max_length=255, blank=True)

    source = models.CharField(max_length=16, choices=DatasetSource.choices, default=DatasetSource.UPLOAD)
    original_filename = models.CharField(max_length=255, blank=True, help_text="metadata only, never a path")
    upload_path = models.CharField(max_length=500, blank=True, help_text="relative to MEDIA_ROOT, generated name")
    size_bytes = models.BigIntegerField(default=0)
    options = models.JSONField(default=dict, help_text="processing options as submitted")

    detected_format = models.CharField(max_length=32, blank=True)
    task = models.CharField(max_length=16, blank=True)
    modality = models.CharField(max_length=16, blank=True)
    num_samples = models.PositiveIntegerField(null=True, blank=True)
    num_classes = models.PositiveIntegerField(null=True, blank=True)
    input_shape = models.JSONField(default=list)
    splits = models.JSONField(default=dict)
    class_names = models.JSONField(default=list)
    feature_names = models.JSONField(default=list)
    sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    storage_dir = models.CharField(max_length=500, blank=True, help_text="canonical directory, relative to MEDIA_ROOT")
    statistics = models.JSONField(default=dict)
    class_balance = models.JSONField(default=dict)
    warnings = models.JSONField(default=list)
    preview = models.JSONField(default=dict)

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    locked_at = models.DateTimeField(null=True, blank=True, help_text="set when a run first uses this version")

    class Meta:
        ordering = ["project", "name", "-version"]
        constraints = [models.UniqueConstraint(fields=["project", "name", "version"], name="one_dataset_version")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def is_locked(self) -> bool:
        return self.locked_at is not None


class Upload(models.Model):
    """A resumable chunked upload (for files over 100 MB): chunks are appended at `received`, and a
    client that lost its connection asks for `received` and goes on from there."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="uploads")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    filename = models.CharField(max_length=255, help_text="metadata only")
    size = models.BigIntegerField()
    received = models.BigIntegerField(default=0)
    path = models.CharField(max_length=500, help_text="relative to MEDIA_ROOT, generated name")
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    @property
    def complete(self) -> bool:
        return self.received == self.size


class SiteSettings(models.Model):
    """Settings admins change at run time. One row (pk=1)."""

    max_upload_bytes = models.BigIntegerField(default=5 * 1024**3, help_text="largest dataset file accepted")

    @classmethod
    def current(cls) -> "SiteSettings":
        settings_row, _ = cls.objects.get_or_create(pk=1)
        return settings_row
