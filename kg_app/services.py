"""Keeping the graph in step with SQL: the outbox, the sync that drains it, and the full rebuild."""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from django.db import transaction
from django.db.models import CharField, Exists, F, OuterRef, Q
from django.db.models.functions import Cast, Coalesce, Greatest
from django.utils import timezone

from kg_app import cypher, projection
from kg_app.models import Concept, OutboxEvent, SyncCursor
from kg_app.schema import NODE_LABELS
from kg_app.store import GraphStore, GraphStoreError

logger = logging.getLogger(__name__)

DRAIN_BATCH = 500
REBUILD_CHUNK = 2000
# Changes that bypass save() are found by timestamp; a transaction that commits late can carry an
# earlier timestamp than the cursor, so each scan looks this far back (replays are harmless).
CATCH_UP_OVERLAP = timedelta(seconds=10)
CATCH_UP_CURSOR = "bypassed-save"
# Processed events are kept a week for inspection (Django admin), then deleted by the sync.
OUTBOX_KEEP = timedelta(days=7)


def _entities() -> dict[str, tuple[Callable, str, Callable]]:
    """entity -> (queryset factory, label of its node, projection function). An event's ``object_id``
    is the row's primary key, except a concept's, which is its slug (the node's stable id)."""
    from trainer_app.models import Checkpoint, Dataset, ModelDesign, Project, Run, Sweep, Worker

    return {
        "project": (lambda: Project.objects.all(), "Project", projection.add_project),
        "dataset": (lambda: Dataset.objects.only(*DATASET_COLUMNS), "DatasetVersion", projection.add_dataset),
        "design": (lambda: ModelDesign.objects.all(), "ModelDesign", projection.add_design),
        # Only the columns the projection reads: logs, confusion matrices and dataset statistics are
        # large JSON whose decoding dominated the rebuild.
        "sweep": (lambda: Sweep.objects.select_related("created_by").only(*SWEEP_COLUMNS), "Sweep", projection.add_sweep),
        "run": (lambda: Run.objects.select_related("design", "created_by", "worker").only(*RUN_COLUMNS)
                .prefetch_related("findings"), "Run", projection.add_run),
        "checkpoint": (lambda: Checkpoint.objects.select_related("run").only(
            "id", "epoch", "step", "best", "created_at", "run__id", "run__name", "run__project_id"),
            "Checkpoint", projection.add_checkpoint),
        "worker": (lambda: Worker.objects.all(), "Worker", projection.add_worker),
        "concept": (lambda: Concept.objects.all(), "Concept", projection.add_admin_concept),
    }


RUN_COLUMNS = ("id", "name", "status", "kind", "config", "resources", "summary", "init", "project_id", "dataset_id",
               "design_id", "created_by_id", "worker_id", "fine_tuned_from_id", "init_weights_id", "sweep_id", "created_at",
               "finished_at", "design__id", "design__spec", "created_by__id", "created_by__username",
               "worker__id", "worker__name", "worker__hostname", "worker__status")
DATASET_COLUMNS = ("id", "project_id", "name", "version", "status", "task", "modality", "num_samples", "num_classes",
                   "sha256", "created_at")
SWEEP_COLUMNS = ("id", "name", "status", "sampler", "pruner", "objectives", "n_trials", "parallelism", "search_space",
                 "best", "created_at", "finished_at", "project_id", "dataset_id", "design_id", "created_by_id",
                 "created_by__id", "created_by__username")
ENTITIES = ("project", "dataset", "design", "sweep", "run", "checkpoint", "worker", "concept")


def outbox_record(*, entity: str, object_id) -> OutboxEvent:
    """Note that an object changed; call it inside the transaction that changed it."""
    if entity not in ENTITIES:
        raise ValueError(f"{entity!r} is not an entity the knowledge graph shows")
    return OutboxEvent.objects.create(entity=entity, object_id=str(object_id))


def graph_prepare(store: GraphStore) -> None:
    """Indexes and constraints on every label's key, and the built-in ontology. Idempotent."""
    store.ensure_schema(NODE_LABELS)
    batch = projection.GraphBatch()
    projection.add_builtin_concepts(batch)
    projection.graph_write(store, batch)


def outbox_catch_up(*, now=None) -> int:
    """Write events for changes that bypassed ``save()``: runs finished by a queryset update
    (``run_finish``, ``run_cancel``), sweeps started or ended by one, and checkpoints bulk-inserted by the
    metrics persister."""
    from trainer_app.models import Checkpoint, Run, Sweep

    now = now or timezone.now()
    with transaction.atomic():
        cursor, _created = SyncCursor.objects.select_for_update().get_or_create(name=CATCH_UP_CURSOR,
                                                                               defaults={"position": now})
        since = cursor.position - CATCH_UP_OVERLAP
        run_changed = Greatest(Coalesce("finished_at", "started_at"), Coalesce("started_at", "finished_at"))
        runs = list(Run.objects.filter(Q(finished_at__gte=since) | Q(started_at__gte=since))
                    .annotate(changed=run_changed).exclude(_has_event("run", "changed"))
                    .values_list("id", flat=True))
        checkpoints = list(Checkpoint.objects.filter(created_at__gte=since).exclude(_has_event("checkpoint", "created_at"))
                           .values_list("id", flat=True))
        sweeps = list(Sweep.objects.filter(Q(finished_at__gte=since) | Q(started_at__gte=since))
                      .annotate(changed=run_changed).exclude(_has_event("sweep", "changed"))
                      .values_list("id", flat=True))
        OutboxEvent.objects.bulk_create(
            [OutboxEvent(entity="run", object_id=str(pk)) for pk in runs]
            + [OutboxEvent(entity="checkpoint", object_id=str(pk)) for pk in checkpoints]
            + [OutboxEvent(entity="sweep", object_id=str(pk)) for pk in sweeps])
        cursor.position = now
        cursor.save(update_fields=["position"])
    return len(runs) + len(checkpoints) + len(sweeps)


def _has_event(entity: str, changed_at: str) -> Exists:
    """The object already has an event written at or after its change (by a signal, or by an earlier
    scan within the overlap): no need for another."""
    return Exists(OutboxEvent.objects.filter(entity=entity, object_id=Cast(OuterRef("pk"), CharField()),
                                             created_at__gte=OuterRef(changed_at)))


def outbox_drain(*, store: GraphStore, batch_size: int = DRAIN_BATCH, max_batches: int = 20) -> int:
    """Project pending events into the graph, oldest first, and mark them done; returns how many.

    Each event names an object that is re-read from SQL, so draining twice changes nothing. If the graph
    fails, the events stay pending (with the error noted) and the exception goes to the caller."""
    done = 0
    for _ in range(max_batches):
        events = list(OutboxEvent.objects.filter(processed_at__isnull=True).order_by("id")[:batch_size])
        if not events:
            break
        batch = _batch_for(events)
        ids = [event.pk for event in events]
        try:
            projection.graph_write(store, batch)
        except GraphStoreError as exc:
            OutboxEvent.objects.filter(id__in=ids).update(attempts=F("attempts") + 1, last_error=str(exc)[:2000])
            raise
        OutboxEvent.objects.filter(id__in=ids).update(processed_at=timezone.now(), last_error="")
        done += len(ids)
    return done


def _batch_for(events: list[OutboxEvent]) -> projection.GraphBatch:
    wanted: dict[str, set[str]] = {}
    for event in events:
        wanted.setdefault(event.entity, set()).add(event.object_id)
    batch = projection.GraphBatch()
    entities = _entities()
    for entity, object_ids in wanted.items():
        if entity not in entities:
            logger.warning("outbox event for unknown entity %r ignored", entity)
            continue
        queryset, label, add = entities[entity]
        found = set()
        if entity == "concept":
            rows = queryset().filter(slug__in=object_ids)
        else:
            rows = queryset().filter(pk__in=[pk for pk in object_ids if pk.isdigit()])
        for row in rows:
            add(batch, row)
            found.add(row.slug if entity == "concept" else str(row.pk))
        for missing in object_ids - found:
            # Deleted since (or never committed): the graph forgets it too.
            batch.delete(label, missing)
    return batch


def graph_rebuild(*, store: GraphStore) -> dict[str, int]:
    """Empty the graph and project every object from SQL. Pending events are marked done, since the
    rebuild read everything they name."""
    started = timezone.now()
    while store.run(cypher.DELETE_SOME_NODES, {"limit": 10_000})[0]["deleted"]:
        pass
    graph_prepare(store)
    for queryset, _label, add in _entities().values():
        batch = projection.GraphBatch()
        for row in queryset().order_by("pk").iterator(chunk_size=REBUILD_CHUNK):
            add(batch, row)
            if len(batch) >= REBUILD_CHUNK:
                projection.graph_write(store, batch)
                batch = projection.GraphBatch()
        projection.graph_write(store, batch)
    OutboxEvent.objects.filter(processed_at__isnull=True, created_at__lte=started).update(processed_at=timezone.now())
    SyncCursor.objects.update_or_create(name=CATCH_UP_CURSOR, defaults={"position": started})
    return graph_counts(store=store)


def graph_counts(*, store: GraphStore) -> dict[str, int]:
    return store.run(cypher.COUNTS, read_only=True)[0]


def outbox_lag() -> dict:
    """How far the graph is behind SQL: pending events and the age of the oldest, for the status page."""
    pending = OutboxEvent.objects.filter(processed_at__isnull=True)
    oldest = pending.order_by("id").values_list("created_at", flat=True).first()
    return {"pending": pending.count(),
            "lag_s": round((timezone.now() - oldest).total_seconds(), 1) if oldest else 0.0}


_prepared: set[tuple[str, str]] = set()


def graph_sync(*, store: GraphStore | None = None) -> dict:
    """One sync pass: prepare the graph once per process, find bypassed changes, drain the outbox.
    A graph that is down leaves every event pending for the next pass; nothing is lost."""
    from kg_app.store import get_graph_store

    own_store = store is None
    store = store or get_graph_store()
    identity = (store.url, getattr(store, "_graph_name", ""))
    try:
        if identity not in _prepared:
            graph_prepare(store)
            _prepared.add(identity)
        caught_up = outbox_catch_up()
        synced = outbox_drain(store=store)
        OutboxEvent.objects.filter(processed_at__lt=timezone.now() - OUTBOX_KEEP).delete()
        return {"ok": True, "synced": synced, "caught_up": caught_up}
    except GraphStoreError as exc:
        _prepared.discard(identity)  # a server that comes back may be a fresh one without the schema
        logger.warning("knowledge graph sync postponed: %s", exc)
        return {"ok": False, "synced": 0, "error": str(exc)}
    finally:
        if own_store:
            store.close()


# --- explanations ------------------------------------------------------------------------------------------------

EXPLANATION_MAX_CHARS = 2000


def concept_explanation_update(*, slug: str, actor, texts: dict[str, str]):
    """An admin rewrites parts of a concept's explanation (``texts``: some of what, when, typical, pitfalls).

    Stored as given, as plain text (pages escape it). An empty part falls back to the built-in text; when
    every part is empty the override is removed. Site admins only; the slug must name a concept."""
    from django.core.exceptions import PermissionDenied, ValidationError

    from kg_app.concepts import concept_entries
    from kg_app.explanations import PARTS
    from kg_app.models import ConceptExplanation
    from trainer_app.selectors import user_is_site_admin

    if not user_is_site_admin(actor):
        raise PermissionDenied("Only site admins can edit the explanations of concepts.")
    if slug not in concept_entries():
        raise ValidationError({"slug": f"No concept is named {slug!r}."})
    unknown = sorted(set(texts) - set(PARTS))
    if unknown:
        raise ValidationError({unknown[0]: f"An explanation has only these parts: {', '.join(PARTS)}."})
    for part, text in texts.items():
        if not isinstance(text, str):
            raise ValidationError({part: "Write the text as a string (plain text)."})
        if len(text) > EXPLANATION_MAX_CHARS:
            raise ValidationError({part: f"Keep it under {EXPLANATION_MAX_CHARS} characters (it has {len(text)}): "
                                         "two to four sentences are enough."})
    with transaction.atomic():
        explanation, _ = ConceptExplanation.objects.select_for_update().get_or_create(slug=slug)
        for part, text in texts.items():
            setattr(explanation, part, text)
        explanation.updated_by = actor
        if not any(getattr(explanation, part).strip() for part in PARTS):
            explanation.delete()
            return None
        explanation.save()
    return explanation
