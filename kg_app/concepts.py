"""Concepts as people read them: the built-in ontology and the concepts admins added, each with its
explanation (the built-in text, overridden part by part by an admin's edit), and the runs and sweeps of a
user's projects that applied it.

Reads only; the one write, an admin's edit of an explanation, is ``services.concept_explanation_update``.
"""
from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass

from django.urls import reverse

from kg_app.explanations import EXPLANATIONS, PARTS
from kg_app.ontology import CONCEPTS, run_applied_concepts, setting_concept, sweep_concepts

RUN_LIMIT = 2000
"""The concept page looks at this many of the user's most recent runs (and sweeps)."""
ROWS_SHOWN = 200
RESULT_METRICS = ("test_accuracy", "val_accuracy", "test_r2", "val_r2", "test_rmse", "val_rmse", "test_mae",
                  "val_mae", "test_loss", "val_loss")
"""A run's result on the concept page: the first of these its summary has."""
# The run setting that says how a concept was applied, shown next to each run (config key, or resources.<key>).
SETTING_SHOWN = {
    "learning-rate": "lr", "batch-size": "batch_size", "epochs": "epochs", "momentum": "momentum",
    "weight-decay": "weight_decay", "gradient-clipping": "grad_clip", "label-smoothing": "label_smoothing",
    "mixed-precision-training": "amp", "reproducibility": "seed", "model-optimisation": "optimizer",
    "learning-rate-schedule": "schedule.type", "learning-rate-warmup": "schedule.warmup_epochs",
    "step-decay": "schedule.gamma", "ddp": "resources.nproc_per_node",
    "data-parallelism": "resources.nproc_per_node", "multi-node": "resources.nnodes",
    "early-stopping": "early_stopping.metric",
}


@dataclass(frozen=True)
class ConceptEntry:
    slug: str
    name: str
    description: str
    is_a: tuple[str, ...]
    requires: tuple[str, ...]
    builtin: bool


def concept_entries() -> dict[str, ConceptEntry]:
    """Every concept by slug: the built-in ones, then those admins added (which cannot replace a built-in)."""
    from kg_app.models import Concept

    entries = {concept.slug: ConceptEntry(concept.slug, concept.name, concept.description, concept.is_a,
                                          concept.requires, True) for concept in CONCEPTS}
    for row in Concept.objects.all():
        if row.slug not in entries:
            entries[row.slug] = ConceptEntry(row.slug, row.name, row.description, (row.is_a,) if row.is_a else (),
                                             tuple(slug for slug in row.requires or [] if slug), False)
    return entries


def concept_explanations() -> dict[str, dict]:
    """Each concept's explanation as shown: {slug: {what, when, typical, pitfalls, edited, updated_by,
    updated_at}}, an admin's non-empty part in place of the built-in one. One query."""
    from kg_app.models import ConceptExplanation

    explanations = {slug: {**texts, "edited": False, "updated_by": None, "updated_at": None}
                    for slug, texts in EXPLANATIONS.items()}
    for row in ConceptExplanation.objects.select_related("updated_by"):
        current = explanations.setdefault(row.slug, {part: "" for part in PARTS})
        current.update({part: getattr(row, part) for part in PARTS if getattr(row, part).strip()})
        current.update(edited=True, updated_by=row.updated_by.get_username() if row.updated_by else None,
                       updated_at=row.updated_at)
    return explanations


def concept_url(slug: str) -> str:
    return reverse("concept-detail", args=[slug])


def _entry_payload(entry: ConceptEntry, explanation: dict | None, narrower: list[str]) -> dict:
    explanation = explanation or {}
    return {"slug": entry.slug, "name": entry.name, "description": entry.description, "is_a": list(entry.is_a),
            "narrower": narrower, "requires": list(entry.requires), "builtin": entry.builtin,
            "explanation": {part: explanation.get(part, "") for part in PARTS},
            "edited": explanation.get("edited", False), "updated_by": explanation.get("updated_by"),
            "updated_at": explanation.get("updated_at"), "url": concept_url(entry.slug)}


def concept_list() -> list[dict]:
    """Every concept with its explanation and page, in the ontology's order (admins' concepts last)."""
    entries, explanations = concept_entries(), concept_explanations()
    narrower = _narrower(entries)
    return [_entry_payload(entry, explanations.get(slug), narrower.get(slug, [])) for slug, entry in entries.items()]


def concept_get(slug: str) -> dict | None:
    entries = concept_entries()
    if slug not in entries:
        return None
    return _entry_payload(entries[slug], concept_explanations().get(slug), _narrower(entries).get(slug, []))


def concept_tooltips() -> dict[str, dict]:
    """What the forms' hover needs for every concept: {slug: {name, what, when, url}}."""
    explanations = concept_explanations()
    return {slug: {"name": entry.name, "what": explanations.get(slug, {}).get("what") or entry.description,
                   "when": explanations.get(slug, {}).get("when", ""), "url": concept_url(slug)}
            for slug, entry in concept_entries().items()}


def _narrower(entries: dict[str, ConceptEntry]) -> dict[str, list[str]]:
    narrower: dict[str, list[str]] = {}
    for entry in entries.values():
        for broader in entry.is_a:
            narrower.setdefault(broader, []).append(entry.slug)
    return narrower


# --- what applied a concept -----------------------------------------------------------------------------------

def concept_usage(*, user, slug: str, limit: int = RUN_LIMIT) -> dict:
    """The runs and sweeps of the user's projects that applied the concept or a narrower one, among the
    ``limit`` most recent of each, with each one's status and result, and a summary of how the runs fared."""
    from trainer_app.selectors import run_list
    from trainer_app.selectors.sweeps import sweep_list

    run_rows = list(run_list(user=user).values(
        "id", "name", "kind", "status", "config", "resources", "summary", "init", "init_weights_id",
        "fine_tuned_from_id", "design_id", "dataset__name", "dataset__version", "project__name",
        "created_at")[:limit])
    families = _families({row["design_id"] for row in run_rows})
    # Applying a narrower concept applies the broader ones too: an AdamW run is an optimisation run.
    applying = {slug} | _narrower_closure(slug, concept_entries())
    runs = [_run_row(row, slug) for row in run_rows
            if applying & _applied(row, families.get(row["design_id"], ""))]
    sweep_rows = list(sweep_list(user=user).values(
        "id", "name", "status", "sampler", "pruner", "objectives", "search_space", "best", "dataset__name",
        "dataset__version", "project__name", "created_at")[:limit])
    sweeps = [_sweep_row(row) for row in sweep_rows if applying & _sweep_applied(row)]
    return {"runs": runs[:ROWS_SHOWN], "run_count": len(runs), "sweeps": sweeps[:ROWS_SHOWN],
            "sweep_count": len(sweeps), "summary": usage_summary(runs), "scanned_runs": len(run_rows),
            "capped": len(run_rows) >= limit, "limit": limit}


def _narrower_closure(slug: str, entries: dict[str, ConceptEntry]) -> set[str]:
    """Every concept below ``slug`` (through is_a, at any depth)."""
    narrower = _narrower(entries)
    found, stack = set(), list(narrower.get(slug, []))
    while stack:
        child = stack.pop()
        if child not in found:
            found.add(child)
            stack.extend(narrower.get(child, []))
    return found


def _families(design_ids: set[int]) -> dict[int, str]:
    """A design's family comes from its spec (a property): read each design once, not once per run."""
    from trainer_app.models import ModelDesign

    return {design.pk: design.family for design in ModelDesign.objects.filter(id__in=design_ids).only("id", "spec")}


def _applied(row: dict, family: str) -> set[str]:
    return set(run_applied_concepts(
        config=row["config"] or {}, resources=row["resources"] or {}, family=family,
        fine_tuned=bool(row["fine_tuned_from_id"] or row["init_weights_id"]),
        frozen=bool((row["init"] or {}).get("freeze"))))


def _sweep_applied(row: dict) -> set[str]:
    """The search concepts, plus the concept of each setting the sweep searched (lr → learning rate)."""
    slugs = set(sweep_concepts(sampler=row["sampler"], pruner=row["pruner"], objectives=len(row["objectives"] or [])))
    return slugs | {setting_concept(name) for name in row["search_space"] or {}} - {None}


def _result(summary: dict) -> tuple[str, float] | tuple[None, None]:
    from trainer_app.selectors.runs import run_summary_values

    values = run_summary_values(_Summarised(summary or {}))
    for metric in RESULT_METRICS:
        if metric in values:
            return metric, values[metric]
    return None, None


@dataclass
class _Summarised:
    summary: dict


def _setting(row: dict, slug: str):
    path = SETTING_SHOWN.get(slug)
    if path is None:
        return None
    value = (row["resources"] if path.startswith("resources.") else row["config"]) or {}
    for key in path.removeprefix("resources.").split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _run_row(row: dict, slug: str) -> dict:
    metric, value = _result(row["summary"])
    return {"id": row["id"], "name": row["name"] or f"run {row['id']}", "kind": row["kind"], "status": row["status"],
            "dataset": f"{row['dataset__name']} v{row['dataset__version']}", "project": row["project__name"],
            "metric": metric, "value": value, "setting": _setting(row, slug), "created_at": row["created_at"]}


def _sweep_row(row: dict) -> dict:
    objectives = row["objectives"] or []
    best = row["best"] or {}
    return {"id": row["id"], "name": row["name"] or f"sweep {row['id']}", "status": row["status"],
            "sampler": row["sampler"], "pruner": row["pruner"],
            "objective": ", ".join(f"{o.get('direction', '')} {o.get('metric', '')}".strip() for o in objectives),
            "best": best.get("value") if isinstance(best.get("value"), (int, float)) else None,
            "dataset": f"{row['dataset__name']} v{row['dataset__version']}", "project": row["project__name"],
            "created_at": row["created_at"]}


def usage_summary(runs: list[dict]) -> dict:
    """How the runs fared, in one line: "12 runs, 10 succeeded, median test accuracy 0.94". The median is
    of the result metric most of them report."""
    succeeded = sum(1 for run in runs if run["status"] == "succeeded")
    counts = Counter(run["metric"] for run in runs if run["metric"])
    metric = max(counts, key=lambda name: (counts[name], -RESULT_METRICS.index(name))) if counts else None
    median = statistics.median(run["value"] for run in runs if run["metric"] == metric) if metric else None
    text = f"{len(runs):,} run{'s' if len(runs) != 1 else ''}, {succeeded:,} succeeded"
    if metric:
        text += f", median {metric.replace('_', ' ')} {median:.3g}"
    return {"runs": len(runs), "succeeded": succeeded, "metric": metric, "median": median, "text": text}
