"""The knowledge-graph browser: a Cytoscape.js canvas fed by /api/kg/ (search, neighbourhood, console)."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import reverse

from kg_app.selectors import graph_overview
from kg_app.store import get_graph_store
from trainer_app.selectors import user_is_site_admin

# Where each kind of node lives in the app; "0" stands for the object's id.
OBJECT_PAGES = {"Run": ("run-detail", "object_id"), "DatasetVersion": ("dataset-detail", "object_id"),
                "ModelDesign": ("model-detail", "object_id"), "Checkpoint": ("run-detail", "run_id"),
                "Sweep": ("sweep-detail", "object_id")}


@login_required
def graph_page(request):
    with get_graph_store() as store:
        overview = graph_overview(store=store, user=request.user)
    pages = {label: {"url": reverse(name, args=[0]), "property": prop} for label, (name, prop) in OBJECT_PAGES.items()}
    return render(request, "frontend/graph/page.html", {
        "overview": overview,
        "graph_config": {"pages": pages, "start": request.GET.get("node", ""),
                         "console": user_is_site_admin(request.user)},
    })
