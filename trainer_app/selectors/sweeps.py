"""Sweeps as users see them: scoped lists, a sweep's trials (the study joined with its runs), its charts."""
from __future__ import annotations

import json
import math

from django.db.models import QuerySet

from trainer_app import studies
from trainer_app.models import Run, Sweep
from trainer_app.selectors.projects import project_list

CHARTS = {
    "history": "plot_optimization_history",
    "importances": "plot_param_importances",
    "parallel": "plot_parallel_coordinate",
    "contour": "plot_contour",
    "slice": "plot_slice",
    "edf": "plot_edf",
    "timeline": "plot_timeline",
    "pareto": "plot_pareto_front",
    "intermediate": "plot_intermediate_values",
}
"""Chart names of the API → optuna.visualization functions."""


def sweep_list(*, user, project_id: int | None = None) -> QuerySet[Sweep]:
    sweeps = Sweep.objects.filter(project__in=project_list(user=user)).select_related("dataset", "design", "queue")
    if project_id is not None:
        sweeps = sweeps.filter(project_id=project_id)
    return sweeps.order_by("-created_at")


def _load(sweep: Sweep):
    import optuna

    return optuna.load_study(study_name=sweep.study_name, storage=studies.storage())


def _finite(value):
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def sweep_trials(sweep: Sweep, study=None) -> list[dict]:
    """Each trial: number, run, state, value(s), params, duration, intermediate values, why it was pruned,
    where it came from (history, a retry), its error."""
    study = study or _load(sweep)
    runs = {run["trial_number"]: run for run in Run.objects.filter(sweep=sweep).values(
        "trial_number", "id", "status", "error", "epoch", "queue__name")}
    trials = []
    for trial in study.get_trials(deepcopy=False):
        run = runs.get(trial.number) or {}
        duration = None
        if trial.datetime_start and trial.datetime_complete:
            duration = (trial.datetime_complete - trial.datetime_start).total_seconds()
        attrs = trial.user_attrs
        trials.append({
            "number": trial.number,
            "run": run.get("id"),
            "run_status": run.get("status"),
            "state": studies.trial_state_name(trial.state),
            "value": _finite(trial.values[0]) if trial.values and len(trial.values) == 1 else None,
            "values": [_finite(value) for value in trial.values] if trial.values else None,
            "params": trial.params or trial.system_attrs.get("fixed_params") or {},  # waiting: the enqueued ones
            "started_at": trial.datetime_start.isoformat() if trial.datetime_start else None,
            "duration_s": duration,
            "intermediate": {str(step): _finite(value) for step, value in sorted(trial.intermediate_values.items())},
            "pruned_why": attrs.get("pruned_why"),
            "pruned_message": attrs.get("pruned_message") or "",
            "error": attrs.get("error") or "",
            "source": attrs.get("source") or ("retry" if "retry_of" in attrs else "search"),
            "retry_of": attrs.get("retry_of"),
            "retried": bool(attrs.get("retried")),
            "stopped_by_user": bool(attrs.get("stopped_by_user")),
            "parameters": attrs.get("parameters"),
            "reused_from": attrs.get("reused_from"),
        })
    return trials


def sweep_detail(sweep: Sweep) -> dict:
    study = _load(sweep)
    trials = sweep_trials(sweep, study)
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial["state"]] = counts.get(trial["state"], 0) + 1
    queued = Run.objects.filter(sweep=sweep, status="queued").count()
    epochs = [trial for trial in trials if trial["state"] in ("complete", "pruned") and trial["reused_from"] is None]
    return {"trials": trials, "counts": counts, "queued_runs": queued,
            "epochs_used": sum(len(trial["intermediate"]) for trial in epochs)}


class ChartError(ValueError):
    pass


def sweep_chart(sweep: Sweep, name: str, *, params: list[str] | None = None) -> dict:
    """One of Optuna's Plotly figures as JSON, or {"empty": why} when there is not enough to draw yet."""
    import optuna
    from optuna.trial import TrialState

    if name not in CHARTS:
        raise ChartError(f"Unknown chart {name!r}: choose one of {', '.join(CHARTS)}.")
    study = _load(sweep)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if name == "pareto" and not sweep.multi_objective:
        return {"empty": "A Pareto front needs several objectives; this sweep has one."}
    if name in ("history", "parallel", "slice", "edf", "contour", "importances", "pareto") and not complete:
        return {"empty": "No trial has finished yet: this chart appears with the first complete trial."}
    if name == "importances" and len(complete) < 2:
        return {"empty": "Parameter importances need at least 2 complete trials."}
    if name == "intermediate" and not any(trial.intermediate_values for trial in study.get_trials(deepcopy=False)):
        return {"empty": "No trial has reported an epoch yet."}
    if name == "timeline" and not study.get_trials(deepcopy=False):
        return {"empty": "No trial has started yet."}
    function = getattr(optuna.visualization, CHARTS[name])
    kwargs = {}
    if sweep.multi_objective and name not in ("pareto", "timeline", "intermediate"):
        index = 0
        kwargs["target"] = lambda trial: trial.values[index]
        kwargs["target_name"] = sweep.objectives[0]["metric"]
    elif name in ("history", "parallel", "slice", "contour", "edf", "importances"):
        kwargs["target_name"] = sweep.objectives[0]["metric"]
    if name == "pareto":
        kwargs["target_names"] = [objective["metric"] for objective in sweep.objectives]
    if name in ("contour", "parallel", "slice") and params:
        kwargs["params"] = params
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            figure = function(study, **kwargs)
    except (ValueError, RuntimeError) as error:
        return {"empty": str(error)}
    return json.loads(figure.to_json())
