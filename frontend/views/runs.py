"""Run pages: the project's runs (filtered, sorted and paged as GET /api/runs/ does) and the live run page
(the launch form is in launch.py).

The run page draws from SQL and listens to the run's event stream (run_live.js).
"""
from __future__ import annotations

import re
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from frontend.views.datasets import _current_project
from trainer_app import selectors
from trainer_app.models import FINAL_STATUSES, Dataset, Membership, ModelDesign, Run, RunMetric, RunStatus, RunTag
from trainer_app.selectors.fleet import run_queue_place
from trainer_app.selectors.metrics import distinct_names
from trainer_app.selectors.run_filters import METRIC_ORDER, RunFilterError, filter_runs, order_runs
from trainer_app.selectors.run_health import finding_payload, run_finding_list
from trainer_app.selectors.runs import run_axis_anchors, run_log_tail, run_metric_last, run_summary_values

CANCELLABLE = (RunStatus.QUEUED, RunStatus.STARTING, RunStatus.RUNNING)
RESUMABLE = (RunStatus.CANCELLED, RunStatus.FAILED, RunStatus.LOST)
# The figure the runs list shows as a run's result, first found wins.
RESULT_METRICS = ("test_accuracy", "test_r2", "test_rmse", "val_accuracy", "val_r2")
LIST_METRICS = RESULT_METRICS + ("val_loss",)
LOG_LINES = 200

PAGE_SIZE = 50
# what GET /api/runs/ filters by, by the same names (the page chooses the project itself)
LIST_FILTERS = ("dataset", "model", "status", "user", "tag", "created_after", "created_before", "search", "starred",
                "archived")
STATUS_CHOICES = [("", "any status"), ("queued,starting,running", "not finished"),
                  *((value, value) for value in RunStatus.values)]
BASE_ORDERS = [("-created", "newest first"), ("created", "oldest first"), ("name", "name A→Z"),
               ("-name", "name Z→A"), ("status", "status")]
# (sign, aggregate, label): "best" takes its direction from the metric (accuracy up, loss down)
METRIC_ORDERS = [("", "best", "best"), ("-", "last", "last ↓"), ("", "last", "last ↑"), ("-", "min", "min ↓"),
                 ("", "min", "min ↑"), ("-", "max", "max ↓"), ("", "max", "max ↑")]
METRIC_NAME = re.compile(r"[a-z0-9_]+")  # the names order_runs accepts


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
    """The project's runs through the API's own filters and orderings (GET /api/runs/), all in the query
    string so that a view can be bookmarked and the table's refresh keeps it."""
    project, projects = _current_project(request)
    template = "frontend/runs/_table.html" if request.htmx else "frontend/runs/list.html"
    if project is None:
        return render(request, template, {"project": None, "projects": projects})
    params = _list_params(request)
    context = {"project": project, "projects": projects, "params": params,
               "has_filters": _has_filters(params),
               "refresh_url": _list_url(project, params), "clear_url": _list_url(project, {})}
    if not request.htmx:  # the bar's choices; the table's refresh does without them
        context.update(_filter_choices(project, params))
    try:
        context.update(_list_page(request.user, project, params))
    except RunFilterError as error:
        return render(request, template, {**context, "error": error, "rows": []}, status=400)
    return render(request, template, context)


def _list_params(request) -> dict[str, str]:
    """The list's filters, order and page from the query string, empty ones left out (a GET form sends
    every field)."""
    return {name: request.GET[name].strip() for name in (*LIST_FILTERS, "order", "page")
            if request.GET.get(name, "").strip()}


def _has_filters(params: dict[str, str]) -> bool:
    return any(name in params for name in LIST_FILTERS)


def _selector_params(params: dict[str, str]) -> dict[str, str]:
    """The filters as filter_runs reads them. The page's `archived=all` is the selector's `archived` given
    but empty: no filter on it (absent, the selector hides archived runs)."""
    selected = {name: params[name] for name in LIST_FILTERS if name in params}
    if selected.get("archived") == "all":
        selected["archived"] = ""
    return selected


def _list_url(project, params: dict[str, str], **changes) -> str:
    query = {"project": project.pk, **params, **changes}
    return f"{reverse('runs')}?{urlencode({name: value for name, value in query.items() if value not in (None, '')})}"


def _page_number(raw: str | None, total: int) -> int:
    if raw is None:
        return 1
    if not raw.isdigit() or int(raw) < 1:
        raise RunFilterError("page", f"page must be a whole number from 1, not {raw!r}.")
    return min(int(raw), max(1, -(-total // PAGE_SIZE)))  # past the end: the last page


def _list_page(user, project, params: dict[str, str]) -> dict:
    runs = filter_runs(selectors.run_list(user=user, project_id=project.pk), _selector_params(params))
    runs = order_runs(runs, params.get("order"))
    total = runs.count()
    page = _page_number(params.get("page"), total)
    start = (page - 1) * PAGE_SIZE
    page_runs = list(runs.prefetch_related("tag_set")[start:start + PAGE_SIZE])
    sort_metric = METRIC_ORDER.match(params.get("order", ""))
    rows = _list_rows(page_runs)
    for row in rows:
        row["sort_value"] = getattr(row["run"], "sort_value", None)
    only_archived = (total == 0 and not _has_filters(params)
                     and Run.objects.filter(project=project, archived=True).exists())
    return {"rows": rows, "total": total, "first": start + 1, "last": start + len(page_runs),
            "active": any(run.status not in FINAL_STATUSES for run in page_runs),
            "sort_metric": (sort_metric["name"], sort_metric["aggregate"]) if sort_metric else None,
            "previous_url": _list_url(project, params, page=page - 1 if page > 2 else None) if page > 1 else None,
            "next_url": _list_url(project, params, page=page + 1) if start + PAGE_SIZE < total else None,
            "tag_query": urlencode({"project": project.pk, **{name: value for name, value in params.items()
                                                             if name not in ("tag", "page")}}),
            "only_archived": only_archived}


def _filter_choices(project, params: dict[str, str]) -> dict:
    """What the filter bar offers: the project's datasets, models, members, tags in use, and an ordering
    by each metric its runs report."""
    metric_names = [name for name in distinct_names(RunMetric, "project_id", project.pk) if METRIC_NAME.fullmatch(name)]
    metric_orders = [(name, [(f"{sign}metric:{name}:{aggregate}", f"{name}: {label}")
                             for sign, aggregate, label in METRIC_ORDERS]) for name in metric_names]
    offered = {value for value, _ in BASE_ORDERS} | {value for _, group in metric_orders for value, _ in group}
    orders = BASE_ORDERS + ([(params["order"], params["order"])] if params.get("order", "-created") not in offered else [])
    statuses = STATUS_CHOICES + ([(params["status"], params["status"])]
                                 if params.get("status", "") not in dict(STATUS_CHOICES) else [])
    return {
        "datasets": Dataset.objects.filter(project=project).order_by("name", "-version"),
        "designs": ModelDesign.objects.filter(project=project).order_by("name", "-version"),
        "members": list(Membership.objects.filter(project=project).order_by("user__username")
                        .values_list("user__username", flat=True)),
        "tags": list(RunTag.objects.filter(run__project=project).order_by("name").values_list("name", flat=True)
                     .distinct()),
        "status_choices": statuses, "order_choices": orders, "metric_orders": metric_orders,
    }


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
        "queue_place": run_queue_place(run=run),
        "findings": [finding_payload(finding) for finding in run_finding_list(run=run)],
        **_steering_context(request, run),
    })


def _steering_context(request, run: Run) -> dict:
    """What a site admin may do to steer this run from its page (the API checks again)."""
    if not selectors.user_is_site_admin(request.user):
        return {"can_steer": False}
    from trainer_app.models import Queue

    queues = list(Queue.objects.exclude(pk=run.queue_id).values_list("name", flat=True)) \
        if run.status == RunStatus.QUEUED else []
    return {"can_steer": True, "steer_queues": queues,
            "can_requeue": run.status in (RunStatus.STARTING, RunStatus.RUNNING, *RESUMABLE)
            and not run.cancel_requested}
