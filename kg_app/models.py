"""The outbox that feeds the knowledge graph, the concepts admins add to the ontology, and their edits of
the concepts' explanations."""
from __future__ import annotations

from django.conf import settings
from django.db import models


class OutboxEvent(models.Model):
    """One domain change the graph must show, written in the transaction that made it.

    It names the object, not its state: the sync task re-reads the row from SQL, so replaying an event
    or draining it twice is harmless, and a deleted object is removed from the graph."""

    entity = models.CharField(max_length=32, help_text="project, dataset, design, run, checkpoint, worker, concept")
    object_id = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["processed_at", "id"], name="kg_outbox_pending"),
                   models.Index(fields=["entity", "object_id", "created_at"], name="kg_outbox_object")]

    def __str__(self) -> str:
        return f"{self.entity} {self.object_id}"


class SyncCursor(models.Model):
    """How far the sync has scanned changes that bypass ``save()`` (queryset updates, bulk inserts)."""

    name = models.CharField(max_length=64, unique=True)
    position = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.position}"


class Concept(models.Model):
    """A concept an admin added to the field's ontology (the built-in ones live in kg_app/ontology.py)."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    is_a = models.CharField(max_length=64, blank=True, help_text="slug of the broader concept")
    requires = models.JSONField(default=list, blank=True, help_text="slugs of the concepts it requires")

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name


class ConceptExplanation(models.Model):
    """An admin's wording of a concept's explanation, overriding the built-in text (kg_app/explanations.py)
    part by part: an empty part falls back to the built-in one. Plain text, always rendered escaped."""

    slug = models.SlugField(max_length=64, unique=True)
    what = models.TextField(blank=True)
    when = models.TextField(blank=True)
    typical = models.TextField(blank=True)
    pitfalls = models.TextField(blank=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return f"explanation of {self.slug}"
