"""Comparing runs: their hyperparameters side by side (which differ), one metric's curves overlaid, and
each run's final value of it, for any number of runs (one query per table, series downsampled)."""
from __future__ import annotations

from trainer_app.models import Run, RunMetric
from trainer_app.selectors.leaderboards import metric_direction
from trainer_app.selectors.metrics import metric_series
from trainer_app.selectors.runs import run_list

MAX_COMPARED = 200


def _flatten(prefix: str, value, into: dict) -> dict:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else key, inner, into)
    else:
        into[prefix] = value
    return into


def run_parameters(run: Run) -> dict:
    """A run's hyperparameters as flat names (schedule.type, augmentation.hflip, …) plus its design,
    dataset and processes."""
    parameters = _flatten("", run.config or {}, {})
    parameters.update({"design": str(run.design), "dataset": str(run.dataset),
                       "nproc_per_node": (run.resources or {}).get("nproc_per_node", 1)})
    return parameters


def compare_runs(*, user, run_ids: list[int], metric: str, points: int = 1000) -> dict | None:
    """None when any run is missing or hidden from the user (the caller answers 404 for all)."""
    runs = list(run_list(user=user).filter(id__in=run_ids).select_related("design", "dataset"))
    if len(runs) != len(set(run_ids)):
        return None
    order = {run_id: index for index, run_id in enumerate(run_ids)}
    runs.sort(key=lambda run: order[run.pk])
    parameters = {run.pk: run_parameters(run) for run in runs}
    names = sorted({name for values in parameters.values() for name in values})
    varying = [name for name in names if len({repr(values.get(name)) for values in parameters.values()}) > 1]
    column = metric_direction(metric)
    finals = {row[0]: {"last": row[1], "best": row[2] if column == "min" else row[3]}
              for row in RunMetric.objects.filter(run_id__in=run_ids, name=metric)
              .values_list("run_id", "last", "min", "max")}
    series = {}
    for run in runs:
        if run.pk in finals:
            series[run.pk] = metric_series(run=run, names=[metric], points=points)[metric]
    return {
        "metric": metric, "direction": column, "parameters": names, "varying": varying,
        "runs": [{"id": run.pk, "name": str(run), "status": run.status, "design": str(run.design),
                  "dataset": str(run.dataset), "params": parameters[run.pk],
                  "last": finals.get(run.pk, {}).get("last"), "best": finals.get(run.pk, {}).get("best")}
                 for run in runs],
        "series": {str(run_id): values for run_id, values in series.items()},
    }


def compare_metric_names(*, run_ids: list[int]) -> list[str]:
    return sorted(set(RunMetric.objects.filter(run_id__in=run_ids).values_list("name", flat=True)))
