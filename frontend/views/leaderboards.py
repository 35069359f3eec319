"""The leaderboard page: one dataset's runs ranked by a metric, seed groups against a pinned baseline."""
from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from trainer_app import selectors
from trainer_app.models import Role, RunMetric
from trainer_app.selectors.leaderboards import AGGREGATES, leaderboard, leaderboard_metrics
from trainer_app.services.leaderboards import leaderboard_pin_baseline


@login_required
def leaderboard_page(request):
    datasets = list(selectors.dataset_list(user=request.user).filter(
        id__in=RunMetric.objects.values("dataset_id")))
    chosen = next((d for d in datasets if str(d.pk) == request.GET.get("dataset")), datasets[0] if datasets else None)
    context = {"datasets": datasets, "dataset": chosen, "aggregates": AGGREGATES}
    if chosen is not None:
        metrics = leaderboard_metrics(dataset=chosen)
        metric = request.GET.get("metric")
        if metric not in metrics:
            metric = "test_accuracy" if "test_accuracy" in metrics else metrics[0]
        aggregate = request.GET.get("aggregate") if request.GET.get("aggregate") in AGGREGATES else "best"
        grouped = request.GET.get("group", "seed") != "none"
        board = leaderboard(user=request.user, dataset=chosen, metric=metric, aggregate=aggregate,
                            group_seeds=grouped, limit=100)
        query = urlencode({"dataset": chosen.pk, "metric": metric, "aggregate": aggregate,
                           "group": "seed" if grouped else "none"})
        role = selectors.user_project_role(request.user, chosen.project)
        context.update(board=board, metrics=metrics, metric=metric, aggregate=aggregate, grouped=grouped,
                       query=query, can_pin=role in (Role.LEAD, Role.ADMIN))
    template = "frontend/leaderboards/_board.html" if request.htmx else "frontend/leaderboards/page.html"
    return render(request, template, context)


@login_required
@require_POST
def leaderboard_pin(request):
    dataset = selectors.dataset_list(user=request.user).filter(id=request.POST.get("dataset")).first()
    if dataset is None:
        return HttpResponse("No such dataset.", status=404)
    try:
        leaderboard_pin_baseline(user=request.user, dataset=dataset, metric=request.POST.get("metric", ""),
                                 config_key=request.POST.get("config_key", ""))
    except (PermissionDenied, ValidationError) as error:
        return HttpResponse(str(getattr(error, "messages", [error])[0]), status=403)
    response = HttpResponse(status=204)
    response["HX-Refresh"] = "true"
    return response
