"""Reads about designs and runs, always scoped to the user's projects."""
from __future__ import annotations

from django.db.models import QuerySet

from trainer_app.models import MetricPoint, ModelDesign, Run, RunLog, RunMetric
from trainer_app.selectors.projects import project_list


def design_list(*, user, project_id: int | None = None) -> QuerySet[ModelDesign]:
    designs = ModelDesign.objects.filter(project__in=project_list(user=user))
    if project_id is not None:
        designs = designs.filter(project_id=project_id)
    return designs.order_by("name", "-version")


def run_list(*, user, project_id: int | None = None) -> QuerySet[Run]:
    runs = Run.objects.filter(project__in=project_list(user=user)).select_related("dataset", "design", "queue")
    if project_id is not None:
        runs = runs.filter(project_id=project_id)
    return runs.order_by("-created_at")


def run_summary_values(run) -> dict[str, float]:
    """The final value of each metric, whichever shape the summary was stored in (flat, or under "values")."""
    summary = dict(run.summary or {})
    nested = summary.pop("values", None)
    flat = {name: value for name, value in summary.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and name not in ("step", "time")}
    if isinstance(nested, dict):
        flat.update({name: value for name, value in nested.items() if isinstance(value, (int, float))})
    return flat


def run_metric_last(run_ids: list[int], names) -> dict[int, dict[str, float]]:
    """The latest value of each named metric per run (one indexed row per run and metric, kept by the persister),
    for runs still running or whose summary lacks them."""
    values: dict[int, dict[str, float]] = {}
    rows = RunMetric.objects.filter(run_id__in=run_ids, name__in=list(names)).values_list("run_id", "name", "last")
    for run_id, name, value in rows if run_ids else []:
        values.setdefault(run_id, {})[name] = value
    return values


def _entry_key(entry_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds or 0), int(sequence or 0)


def run_log_tail(run, limit: int = 200) -> list[dict]:
    """The last log lines persisted up to the run's stream position; the event stream sends those after it."""
    position = _entry_key(run.stream_position)
    rows = RunLog.objects.filter(run=run).order_by("-id").values("entry", "time", "level", "message")[:limit * 2]
    lines = sorted((row for row in rows if _entry_key(row["entry"]) <= position), key=lambda row: _entry_key(row["entry"]))
    return [{"time": row["time"], "level": row["level"], "message": row["message"]} for row in lines[-limit:]]


def run_axis_anchors(run) -> dict:
    """(step, epoch) at each epoch's end and (step, time) points, so the charts can put persisted points (which
    carry only steps) on an epoch or wall-time axis."""
    points = MetricPoint.objects.filter(run=run)
    epochs = list(points.filter(name="val_loss").order_by("step").values_list("step", "epoch", "time"))
    times = [(step, time) for step, _, time in epochs if time]
    system = list(points.filter(name="cpu_percent").order_by("step").values_list("step", "time"))
    stride = max(1, len(system) // 1000)
    times += [row for row in system[::stride] if row[1]]
    for order in ("step", "-step"):
        edge = points.filter(name="lr").order_by(order).values_list("step", "time").first()
        if edge and edge[1]:
            times.append(edge)
    return {"epoch": [[step, epoch] for step, epoch, _ in epochs if epoch is not None],
            "time": sorted(set((int(step), float(time)) for step, time in times))}
