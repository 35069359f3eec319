"""Recommendations from history: the designs and settings that did best on a dataset and on similar ones,
each with the runs behind it, for GET /api/datasets/{id}/recommendations/ and the dataset and launch pages.

Similarity between two datasets (same task required, else they are not compared):
    score = 0.4 × input shape + 0.3 × classes + 0.3 × size, each part from 0 to 1:
    - input shape: 1 when equal; images with the same channels but another size 0.5; tables
      1 − |ln(features ratio)| / ln 10 (10× more columns → 0); an image against a table 0;
    - classes: the smaller count over the larger (regression: 1);
    - size: 1 − |ln(samples ratio)| / ln 100 (100× more samples → 0).
    Datasets scoring SIMILAR_MIN or more count as similar; the reasons are shown beside the score.

Candidates are seed groups (runs that differ only by seed share a config_key, as on the leaderboards) of
succeeded, unarchived runs and sweep trials in the user's projects, ranked by the mean of the best
validation accuracy of each run (classification) or of its lowest validation loss (regression). With no
history at all, the answer says so and gives the defaults for the dataset's size and shape, with why.
"""
from __future__ import annotations

import json
import math

from django.db.models import Avg, Count, F

from trainer_app.models import Dataset, DatasetStatus, Run, RunKind, RunMetric, RunStatus
from trainer_app.selectors.projects import project_list

SIMILAR_MIN = 0.5
WEIGHTS = {"shape": 0.4, "classes": 0.3, "size": 0.3}
HERE_GROUPS = 3
SIMILAR_DATASETS = 3
GROUPS_PER_SIMILAR = 3
# The settings a recommendation hands to a sweep as a trial to try first (Optuna enqueue_trial).
WARM_START_PARAMETERS = ("optimizer", "lr", "batch_size", "weight_decay", "momentum", "label_smoothing")
OBJECTIVES = {"classification": ("val_accuracy", "max"), "regression": ("val_loss", "min")}


def recommendation_objective(task: str) -> tuple[str, str]:
    """The metric recommendations rank by, and whether higher (max) or lower (min) is better."""
    return OBJECTIVES.get(task, OBJECTIVES["classification"])


# --- similarity --------------------------------------------------------------------------------------

def dataset_similarity(*, target: Dataset, other: Dataset) -> dict | None:
    """``{"score", "parts", "reasons"}`` of ``other`` seen from ``target``; None when the tasks differ."""
    if other.pk == target.pk:
        return {"score": 1.0, "parts": {"shape": 1.0, "classes": 1.0, "size": 1.0}, "reasons": ["this dataset"]}
    if not target.task or other.task != target.task:
        return None
    shape, shape_reason = _shape_similarity(list(target.input_shape or []), list(other.input_shape or []))
    classes, classes_reason = _class_similarity(target, other)
    size, size_reason = _size_similarity(target.num_samples or 0, other.num_samples or 0)
    parts = {"shape": shape, "classes": classes, "size": size}
    score = round(sum(WEIGHTS[name] * value for name, value in parts.items()), 3)
    reasons = [f"same task ({target.task})", shape_reason, classes_reason, size_reason]
    if other.project_id == target.project_id and other.name == target.name:
        reasons.insert(0, f"another version of {target.name} (v{other.version})")
    return {"score": score, "parts": {name: round(value, 3) for name, value in parts.items()},
            "reasons": [reason for reason in reasons if reason]}


def _shape_text(shape: list) -> str:
    return "×".join(str(size) for size in shape) or "unknown"


def _shape_similarity(mine: list, theirs: list) -> tuple[float, str]:
    if mine == theirs:
        return 1.0, f"same input shape {_shape_text(mine)}"
    if len(mine) == 3 and len(theirs) == 3 and mine[0] == theirs[0]:
        return 0.5, f"images with {mine[0]} channel(s), {_shape_text(mine[1:])} against {_shape_text(theirs[1:])}"
    if len(mine) == 1 and len(theirs) == 1 and mine[0] and theirs[0]:
        score = max(0.0, 1 - abs(math.log(mine[0] / theirs[0])) / math.log(10))
        return score, f"{theirs[0]} features against {mine[0]}"
    return 0.0, f"a different kind of input ({_shape_text(theirs)} against {_shape_text(mine)})"


def _class_similarity(target: Dataset, other: Dataset) -> tuple[float, str]:
    if target.task != "classification":
        return 1.0, ""
    mine, theirs = target.num_classes or 0, other.num_classes or 0
    if mine == theirs:
        return 1.0, f"same number of classes ({mine})"
    if not mine or not theirs:
        return 0.0, "class count unknown"
    return min(mine, theirs) / max(mine, theirs), f"{theirs} classes against {mine}"


def _size_similarity(mine: int, theirs: int) -> tuple[float, str]:
    if not mine or not theirs:
        return 0.0, "size unknown"
    if mine == theirs:
        return 1.0, f"same size ({mine:,} samples)"
    ratio = theirs / mine
    score = max(0.0, 1 - abs(math.log(ratio)) / math.log(100))
    if abs(math.log(ratio)) < math.log(1.05):
        return score, f"about the same size ({theirs:,} samples against {mine:,})"
    relation = f"{ratio:.1f}× more" if ratio > 1 else f"{1 / ratio:.1f}× fewer"
    return score, f"{theirs:,} samples against {mine:,} ({relation})"


def similar_datasets(*, user, dataset: Dataset, minimum: float = SIMILAR_MIN) -> list[tuple[Dataset, dict]]:
    """The user's other ready datasets of the same task, most similar first, with their similarity."""
    candidates = (Dataset.objects.filter(project__in=project_list(user=user), task=dataset.task,
                                         status=DatasetStatus.READY).exclude(pk=dataset.pk)
                  .only("id", "project_id", "name", "version", "task", "input_shape", "num_classes", "num_samples"))
    scored = []
    for other in candidates:
        similarity = dataset_similarity(target=dataset, other=other)
        if similarity is not None and similarity["score"] >= minimum:
            scored.append((other, similarity))
    scored.sort(key=lambda pair: (-pair[1]["score"], pair[0].pk))
    return scored


# --- candidates ----------------------------------------------------------------------------------------

def _history(*, user, metric: str):
    """The summaries of runs that count as history: succeeded, unarchived, in the user's projects (a
    learning-rate finder trains nothing worth repeating)."""
    return RunMetric.objects.filter(name=metric, run__project__in=project_list(user=user), run__archived=False,
                                    run__status=RunStatus.SUCCEEDED).exclude(run__kind=RunKind.LR_FINDER).exclude(
        run__config_key="")


def best_groups(*, user, dataset: Dataset, metric: str, direction: str, limit: int) -> list[dict]:
    """The ``limit`` best seed groups on one dataset: mean ± std of each run's best value, n, run ids."""
    column = "max" if direction == "max" else "min"
    history = _history(user=user, metric=metric).filter(dataset_id=dataset.pk)
    # std from the members below: SQLite's STDDEV_SAMP fails on a group of one
    groups = list(history.values(key=F("run__config_key")).annotate(mean=Avg(column), n=Count("run_id"))
                  .order_by("-mean" if direction == "max" else "mean", "key")[:limit])
    members: dict[str, list[tuple[int, float]]] = {}
    for run_id, key, value in history.filter(run__config_key__in=[group["key"] for group in groups]).values_list(
            "run_id", "run__config_key", column):
        members.setdefault(key, []).append((run_id, value))
    # each group's best run stands for it ("launch this" clones its settings); ties go to the earliest run
    best_of = {key: (max(runs, key=lambda pair: (pair[1], -pair[0])) if direction == "max"
                     else min(runs, key=lambda pair: (pair[1], pair[0]))) for key, runs in members.items()}
    examples = {run.pk: run for run in Run.objects.filter(id__in=[run_id for run_id, _ in best_of.values()])
                .select_related("design")
                .only("id", "name", "config", "model_spec", "project_id", "dataset_id", "design__id", "design__name",
                      "design__version", "design__spec", "design__project_id")}
    rows = []
    for group in groups:
        best_id, best_value = best_of.get(group["key"], (None, None))
        if best_id not in examples:
            continue
        rows.append({"config_key": group["key"], "mean": group["mean"],
                     "std": _std([value for _, value in members[group["key"]]]), "n": group["n"],
                     "runs": sorted(run_id for run_id, _ in members[group["key"]]), "best_run": best_id,
                     "best_value": best_value, "run": examples[best_id]})
    return rows


def _std(values: list[float]) -> float | None:
    """The sample standard deviation; None for fewer than two runs."""
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    return math.sqrt(sum((value - mean) ** 2 for value in values) / (len(values) - 1))


def _candidate(group: dict, *, dataset: Dataset, similarity: dict, source: str, metric: str,
               direction: str) -> dict:
    run = group.pop("run")
    config = {key: value for key, value in (run.config or {}).items() if key != "seed"}
    design = run.design
    spec = run.model_spec or design.spec or {}
    return {**group, "source": source, "metric": metric, "direction": direction,
            "dataset": {"id": dataset.pk, "name": dataset.name, "version": dataset.version,
                        "project": dataset.project_id},
            "similarity": similarity,
            "design": {"id": design.pk, "name": f"{design.name} v{design.version}", "family": design.family,
                       "preset": spec.get("preset"), "spec": spec, "project": design.project_id},
            "config": config,
            "params": warm_start_params(config)}


def warm_start_params(config: dict) -> dict:
    """The settings of a run that a sweep can take as a trial to try first: the optimizer, learning rate and
    batch size, and weight decay, label smoothing and momentum where they do something (non-zero; momentum
    for sgd and rmsprop only)."""
    params = {}
    for name in WARM_START_PARAMETERS:
        value = config.get(name)
        if not isinstance(value, (int, float, str)) or isinstance(value, bool):
            continue
        if name in ("weight_decay", "label_smoothing") and not value:
            continue
        if name == "momentum" and config.get("optimizer") not in ("sgd", "rmsprop"):
            continue
        params[name] = value
    return params


# --- the answer ---------------------------------------------------------------------------------------------

def dataset_recommendations(*, user, dataset: Dataset) -> dict:
    """What worked here and on similar datasets, best first; with no history at all, the defaults and why."""
    metric, direction = recommendation_objective(dataset.task)
    here = [_candidate(group, dataset=dataset, similarity=dataset_similarity(target=dataset, other=dataset),
                       source="this dataset", metric=metric, direction=direction)
            for group in best_groups(user=user, dataset=dataset, metric=metric, direction=direction, limit=HERE_GROUPS)]
    similar, compared = [], []
    for other, similarity in similar_datasets(user=user, dataset=dataset):
        groups = best_groups(user=user, dataset=other, metric=metric, direction=direction, limit=GROUPS_PER_SIMILAR)
        if not groups:
            continue
        compared.append({"id": other.pk, "name": other.name, "version": other.version, "project": other.project_id,
                         "similarity": similarity})
        similar += [_candidate(group, dataset=other, similarity=similarity, source="similar dataset", metric=metric,
                               direction=direction) for group in groups]
        if len(compared) >= SIMILAR_DATASETS:
            break
    recommendations = here + similar
    for rank, recommendation in enumerate(recommendations, start=1):
        recommendation["rank"] = rank
    answer = {"dataset": {"id": dataset.pk, "name": dataset.name, "version": dataset.version, "task": dataset.task},
              "metric": metric, "direction": direction, "has_history": bool(recommendations),
              "recommendations": recommendations, "similar_datasets": compared, "defaults": None}
    if here:
        answer["message"] = (f"The best of {sum(r['n'] for r in here)} finished run(s) on this dataset"
                             + (f" and {len(compared)} similar one(s)." if compared else "."))
    elif similar:
        answer["message"] = (f"No finished run on {dataset} yet: these did best on {len(compared)} similar "
                             "dataset(s); the similarity and its reasons are shown with each.")
    else:
        answer["message"] = (f"No history yet: no finished run on {dataset} or on a similar dataset (same task, "
                             "input shape, classes and size) in your projects. Here are the defaults for its size "
                             "and shape, with the reason for each; once runs finish, they replace these.")
        answer["defaults"] = recommendation_defaults(dataset=dataset)
    return answer


def recommendation_warm_start(answer: dict, *, limit: int = 3) -> list[dict]:
    """The parameter sets a sweep should try first: the recommendations' settings (or the defaults'), best
    first, each once."""
    params = [entry["params"] for entry in answer["recommendations"] if entry["params"]]
    if answer.get("defaults"):
        params = [answer["defaults"]["params"]]
    unique = {json.dumps(entry, sort_keys=True): entry for entry in params}
    return list(unique.values())[:limit]


def recommendation_defaults(*, dataset: Dataset) -> dict:
    """The preset the launch form suggests for the dataset and the settings proposed for its size and shape
    (trainer_app/selectors/defaults.py), as a recommendation without evidence."""
    from trainer_app.selectors.defaults import dataset_training_defaults

    preset = "small_cnn" if dataset.modality == "image" else "mlp"
    proposed = dataset_training_defaults(dataset=dataset, preset=preset)
    reasons = {"model": f"the {preset} preset suits {'images' if preset == 'small_cnn' else 'tables'} of this size",
               **proposed["reasons"]}
    params = {name: proposed[name] for name in ("optimizer", "lr", "batch_size")}
    return {"model": f"preset:{preset}", "preset": preset, "config": {**params, "epochs": proposed["epochs"]},
            "params": params, "reasons": reasons}
