"""Page views. Thin: data comes from selectors, actions go through services."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from trainer_app import health, selectors, services
from trainer_app.models import Role

# What each section is for and what to do first, shown while it is empty.
EMPTY_STATES = {
    "fleet": {
        "title": "Fleet",
        "lead": "The workers that run jobs, their GPUs and queues.",
        "empty": "No worker has registered.",
        "next": "Start one with `celery -A config worker -Q default,cpu` (make up starts one for you).",
    },
}


@login_required
def home(request):
    return redirect("runs")


def _require_site_admin(request) -> None:
    if not selectors.user_is_site_admin(request.user):
        raise PermissionDenied("Only admins can see this page.")


@login_required
def fleet(request):
    _require_site_admin(request)
    from trainer_app.selectors.fleet import fleet_overview

    overview = fleet_overview()
    for row in overview["rows"]:
        row["gpu_rows"] = mark_safe("".join(_gpu_row(gpu) for gpu in row["gpus"]))  # noqa: S308 - escaped in _gpu_row
    template = "frontend/_fleet.html" if request.htmx else "frontend/fleet.html"
    return render(request, template, {"section": EMPTY_STATES["fleet"], "fleet": overview})


def _gpu_row(gpu: dict) -> str:
    """One GPU's table row. Built here rather than in the template: a fleet of 100 nodes has 800 of them, and
    the template engine spent ~0.4 ms on each (benchmarks/bench_placement.py, the fleet page). Text from the
    worker (the GPU's name, a run's name) is escaped; the rest are numbers we formatted."""
    def known(value, unit: str) -> str:
        return f"{value:g}{unit}" if isinstance(value, (int, float)) else "—"

    run = gpu.get("run")
    job = (f'<a href="/runs/{int(run["id"])}/">{escape(run["label"])}</a> <span class="muted small">'
           f'{int(run["percent"])} %</span>' if run else '<span class="muted">idle</span>')
    lines = "".join(f'<polyline class="{css}" points="{points}"/>'
                    for css, points in (("spark-util", gpu.get("util_points")), ("spark-mem", gpu.get("mem_points")))
                    if points)
    used, total = gpu.get("memory_used_mb"), gpu.get("memory_total_mb")
    memory = f"{used:g} / {known(total, '')} MB" if isinstance(used, (int, float)) else "—"
    return (f'<tr data-testid="gpu"><td>{escape(gpu.get("index"))} · {escape(gpu.get("name", ""))}</td>'
            f'<td>{known(gpu.get("utilization"), " %")}</td><td>{memory}</td>'
            f'<td>{known(gpu.get("temperature_c"), " °C")}</td><td><svg class="spark" width="120" height="24" '
            f'viewBox="0 0 120 24" role="img" aria-label="utilisation and memory over the last minutes">{lines}</svg>'
            f'</td><td>{job}</td></tr>')


@login_required
def worker_detail(request, worker_id: int):
    """One worker: its facts, each GPU's utilisation and memory over time (a chart from
    /api/workers/{id}/gpu-history/) and its job history."""
    _require_site_admin(request)
    from trainer_app.models import Worker
    from trainer_app.selectors.fleet import worker_jobs

    worker = get_object_or_404(Worker, id=worker_id)
    return render(request, "frontend/worker.html", {"worker": worker, "jobs": worker_jobs(worker=worker),
                                                    "spans": ((1, "1 h"), (6, "6 h"), (24, "24 h"), (168, "7 days"))})


@login_required
def status(request):
    _require_site_admin(request)
    template = "frontend/_status_table.html" if request.htmx else "frontend/status.html"
    return render(request, template, {"report": health.health_report()})


@login_required
def projects(request):
    rows = []
    for project, role in selectors.project_list_with_roles(user=request.user):
        members = project.memberships.select_related("user").order_by("user__username")
        can_manage = role == Role.ADMIN or selectors.user_is_site_admin(request.user)
        rows.append({"project": project, "role": role, "members": members, "can_manage": can_manage})
    return render(request, "frontend/projects.html", {"rows": rows, "roles": Role.choices})


@login_required
@require_POST
def project_create(request):
    if not selectors.user_is_site_admin(request.user):
        raise PermissionDenied("Only admins can create projects.")
    try:
        services.project_create(name=request.POST.get("name", ""), description=request.POST.get("description", ""),
                                created_by=request.user)
    except ValidationError as error:
        return _form_error(request, error)
    return _projects_response(request)


@login_required
@require_POST
def project_member_set(request, project_id: int):
    project = get_object_or_404(selectors.project_list(user=request.user), id=project_id)
    try:
        services.membership_set(project=project, actor=request.user, username=request.POST.get("username", ""),
                                role=request.POST.get("role", ""))
    except ValidationError as error:
        return _form_error(request, error)
    return _projects_response(request)


def _form_error(request, error: ValidationError) -> HttpResponse:
    messages = [message for messages in error.message_dict.values() for message in messages] \
        if hasattr(error, "error_dict") else error.messages
    return render(request, "frontend/_form_error.html", {"messages": messages}, status=400)


def _projects_response(request) -> HttpResponse:
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"
        return response
    return redirect("projects")
