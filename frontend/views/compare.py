"""The compare page: the view's whole state lives in its URL (runs, metric, x axis, hide-identical,
scatter parameter), so a link shares exactly what one sees. Data comes from /api/runs/compare/."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render

from trainer_app import selectors


@login_required
def run_compare(request):
    raw = request.GET.get("runs", "")
    run_ids = [int(part) for part in raw.split(",") if part.strip().isdigit()]
    visible = selectors.run_list(user=request.user).filter(id__in=run_ids).count() if run_ids else 0
    if run_ids and visible != len(set(run_ids)):
        raise Http404("Some of those runs do not exist or are not in your projects.")
    return render(request, "frontend/runs/compare.html", {"run_ids": ",".join(map(str, run_ids)),
                                                         "count": len(run_ids)})
