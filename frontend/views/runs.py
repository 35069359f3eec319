"""Run pages: the project's runs and the live run page (the launch form is in launch.py).

The run page draws from SQL and listens to the run's event stream (run_live.js).
"""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render

from frontend.views.datasets import _current_project
from trainer_app import selectors
from trainer_app.models import FINAL_STATUSES, RunStatus
from trainer_app.selectors.runs import run_axis_anchors, run_log_tail, run_metric_last, run_summary_values

CANCELLABLE = (RunStatus.QUEUED, RunStatus.STARTING, RunStatus.RUNNING)
RESUMABLE = (RunStatus.CANCELLED, RunStatus.FAILED, RunStatus.LOST)
# The figure the runs list shows as a run's result, first found wins.
RESULT_METRICS = ("test_accuracy", "test_r2", "test_rmse", "val_accuracy", "val_r2")
LIST_METRICS = RESULT_METRICS + ("val_loss",)
LOG_LINES = 200


# --- the runs list ----------------------------------------------------------------------------------

def _list_rows(runs) -> list[dict]:
    summaries = {run.pk: run_summary_values(run) for run in runs}
    missing = [run.pk for run in runs if "val_loss" not in summaries[run.pk]]  # running, or no summary yet
    fallback = run_metric_last(missing, LIST_METRICS)
    rows = []
    for run in runs:
        metrics = {**fallback.get(run.pk, {}), **summaries[run.pk]}
        result = next(((name, metrics[name]) for name in RESULT_METRICS if name in metrics), None)
        rows.append({"run": run, "result": result, "val_loss": metrics.get("val_loss"),
                     "percent": round(100 * run.step / run.total_steps) if run.total_steps else 0})
    return rows


@login_required
def run_list(request):
    project, projects = _current_project(request)
    status = request.GET.get("status", "")
    runs = []
    if project is not None:
        queryset = selectors.run_list(user=request.user, project_id=project.pk)
        if status in RunStatus.values:
            queryset = queryset.filter(status=status)
        runs = list(queryset.filter(archived=False)[:100])
    active = any(run.status not in FINAL_STATUSES for run in runs)
    template = "frontend/runs/_table.html" if request.htmx else "frontend/runs/list.html"
    return render(request, template, {"project": project, "projects": projects, "rows": _list_rows(runs),
                                      "active": active, "status": status, "statuses": RunStatus.choices})


# --- the run page -----------------------------------------------------------------------------------

def _flatten(prefix: str, value) -> list[tuple[str, object]]:
    if isinstance(value, dict):
        if not value:
            return [(prefix, "—")] if prefix else []
        return [row for key, inner in value.items() for row in _flatten(f"{prefix}.{key}" if prefix else key, inner)]
    return [(prefix, "—" if value is None else value)]


def _summary_rows(run) -> list[tuple[str, float]]:
    """The run's summary, else (while it runs) the latest value of each metric."""
    summary = run_summary_values(run) or dict(run.metric_summaries.values_list("name", "last"))
    order = {"test": 0, "val": 1, "train": 2}
    rows = sorted(summary.items(), key=lambda item: (order.get(item[0].split("_")[0], 3), item[0]))
    return [(name, f"{value:.6g}" if isinstance(value, (int, float)) else value) for name, value in rows]


def _panels_context(run) -> dict:
    return {"run": run, "config_rows": _flatten("", run.config), "resource_rows": _flatten("", run.resources),
            "summary_rows": _summary_rows(run), "checkpoints": run.checkpoints.order_by("-step")[:50],
            "children": run.fine_tuned_runs.order_by("-created_at")[:20]}


@login_required
def run_detail(request, run_id: int):
    run = get_object_or_404(selectors.run_list(user=request.user).select_related(
        "dataset", "design", "queue", "fine_tuned_from", "worker", "created_by"), id=run_id)
    if request.htmx:  # the page refreshes its panels when the run reports a checkpoint, a summary or its end
        return render(request, "frontend/runs/_panels.html", _panels_context(run))
    page = {
        "id": run.pk, "status": run.status, "stream_position": run.stream_position,
        "live": run.status not in FINAL_STATUSES, "step": run.step, "total_steps": run.total_steps,
        "epoch": run.epoch, "epochs": run.config.get("epochs"),
        "started_at": run.started_at.timestamp() if run.started_at else None,
        "finished_at": run.finished_at.timestamp() if run.finished_at else None,
        "anchors": run_axis_anchors(run), "logs": run_log_tail(run, LOG_LINES), "confusion": run.confusion_matrix or None,
        "class_names": run.dataset.class_names,
    }
    return render(request, "frontend/runs/detail.html", {
        **_panels_context(run), "page": page,
        "can_cancel": run.status in CANCELLABLE, "can_resume": run.status in RESUMABLE,
    })
