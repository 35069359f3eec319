"""The runs list's filters and orderings, parsed from a query string: a bad parameter raises
RunFilterError naming it, never a 500 or a silently ignored filter."""
from __future__ import annotations

import re
from datetime import date, datetime

from django.db.models import F, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from trainer_app.models import RunMetric, RunStatus
from trainer_app.selectors.leaderboards import metric_direction

ORDER_FIELDS = {"created": "created_at", "status": "status", "name": "name", "id": "id"}
METRIC_ORDER = re.compile(r"^(?P<desc>-)?metric:(?P<name>[a-z0-9_]+):(?P<aggregate>last|best|min|max)$")


class RunFilterError(ValueError):
    def __init__(self, parameter: str, message: str):
        super().__init__(message)
        self.parameter = parameter


def _integer(parameter: str, value: str) -> int:
    if not value.isdigit():
        raise RunFilterError(parameter, f"{parameter} must be an id (a whole number), not {value!r}.")
    return int(value)


def _date(parameter: str, value: str) -> datetime:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise RunFilterError(parameter, f"{parameter} must be a date like 2026-11-29, not {value!r}.") from None
    return timezone.make_aware(datetime(day.year, day.month, day.day))


def filter_runs(runs: QuerySet, params) -> QuerySet:
    """Apply project, dataset, model, status, user, tag, created_after/before, search, starred, archived."""
    for parameter, field in (("project", "project_id"), ("dataset", "dataset_id"), ("model", "design_id")):
        if params.get(parameter):
            runs = runs.filter(**{field: _integer(parameter, params[parameter])})
    if params.get("status"):
        statuses = params["status"].split(",")
        unknown = [status for status in statuses if status not in RunStatus.values]
        if unknown:
            raise RunFilterError("status", f"Unknown status {', '.join(unknown)}: use {', '.join(RunStatus.values)}.")
        runs = runs.filter(status__in=statuses)
    if params.get("user"):
        runs = runs.filter(created_by__username=params["user"])
    if params.get("tag"):
        runs = runs.filter(tag_set__name=params["tag"])
    if params.get("created_after"):
        runs = runs.filter(created_at__gte=_date("created_after", params["created_after"]))
    if params.get("created_before"):
        runs = runs.filter(created_at__lt=_date("created_before", params["created_before"]))
    if params.get("search"):
        term = params["search"].strip()
        runs = runs.filter(Q(name__icontains=term) | Q(notes__icontains=term) | Q(design__name__icontains=term)
                           | Q(dataset__name__icontains=term))
    for parameter in ("starred", "archived"):
        if params.get(parameter):
            if params[parameter] not in ("true", "false"):
                raise RunFilterError(parameter, f"{parameter} must be true or false, not {params[parameter]!r}.")
            runs = runs.filter(**{parameter: params[parameter] == "true"})
    if "archived" not in params:
        runs = runs.filter(archived=False)
    return runs.distinct()


def order_runs(runs: QuerySet, order: str | None) -> QuerySet:
    """`-created` (default), `created`, `status`, `name`, `id`, or `metric:<name>:<last|best|min|max>` with an
    optional leading `-`; runs without the metric come last."""
    if not order:
        return runs.order_by("-created_at")
    match = METRIC_ORDER.match(order)
    if match:
        name, aggregate = match["name"], match["aggregate"]
        column = metric_direction(name) if aggregate == "best" else aggregate
        value = Subquery(RunMetric.objects.filter(run=OuterRef("pk"), name=name).values(column)[:1])
        runs = runs.annotate(sort_value=value)
        descending = bool(match["desc"]) if aggregate != "best" else metric_direction(name) == "max"
        key = F("sort_value").desc(nulls_last=True) if descending else F("sort_value").asc(nulls_last=True)
        return runs.order_by(key, "-created_at")
    field = order.lstrip("-")
    if field not in ORDER_FIELDS:
        raise RunFilterError("order", f"Unknown order {order!r}: use created, status, name, id or "
                                      "metric:<name>:<last|best|min|max>, with - for descending.")
    return runs.order_by(("-" if order.startswith("-") else "") + ORDER_FIELDS[field])
