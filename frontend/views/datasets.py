"""Dataset pages: the list with live processing progress, the upload form, the preview."""
from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, render

from kg_app.ontology import TASK_CONCEPTS
from trainer_app import selectors
from trainer_app.models import DatasetStatus
from trainer_app.services import datasets as dataset_services


def _current_project(request):
    """The project the user works in: ?project=, else the last one chosen, else their first."""
    projects = list(selectors.project_list(user=request.user))
    wanted = request.GET.get("project") or request.session.get("project_id")
    chosen = next((p for p in projects if str(p.pk) == str(wanted)), projects[0] if projects else None)
    if chosen is not None:
        request.session["project_id"] = chosen.pk
    return chosen, projects


@login_required
def dataset_list(request):
    project, projects = _current_project(request)
    datasets = selectors.dataset_list(user=request.user, project_id=project.pk) if project else []
    processing = any(d.status == DatasetStatus.PROCESSING for d in datasets)
    template = "frontend/datasets/_table.html" if request.htmx else "frontend/datasets/list.html"
    return render(request, template, {
        "project": project, "projects": projects, "datasets": datasets, "processing": processing,
        "max_upload_bytes": dataset_services.max_upload_bytes(), "chunk_bytes": settings.UPLOAD_CHUNK_BYTES,
        "task_concepts": json.dumps(TASK_CONCEPTS),
    })


@login_required
def dataset_detail(request, dataset_id: int):
    dataset = get_object_or_404(selectors.dataset_list(user=request.user), id=dataset_id)
    if request.htmx and dataset.status == DatasetStatus.PROCESSING:
        return render(request, "frontend/datasets/_progress.html", {"dataset": dataset})
    balance = {
        "classes": dataset.class_names,
        "splits": {split: counts for split, counts in (dataset.class_balance or {}).items()},
    }
    preview = dataset.preview or {}
    images_by_class: dict[str, list] = {}
    for image in preview.get("images", []):
        images_by_class.setdefault(image.get("class_name") or str(image.get("class_index")), []).append(image)
    return render(request, "frontend/datasets/detail.html", {
        "dataset": dataset, "versions": selectors.dataset_versions(dataset=dataset),
        "balance_json": json.dumps(balance), "images_by_class": images_by_class,
        "features": (dataset.statistics or {}).get("features", []),
        "details": (dataset.statistics or {}).get("details", {}),
        "runs": dataset.runs.order_by("-created_at")[:50],
    })


@login_required
def dataset_preview_image(request, dataset_id: int, name: str):
    """A thumbnail the processing wrote, served only to the dataset's project members."""
    dataset = get_object_or_404(selectors.dataset_list(user=request.user), id=dataset_id)
    allowed = {image.get("path") for image in (dataset.preview or {}).get("images", [])}
    relative = f"preview/{name}"
    if relative not in allowed:
        raise Http404("No such preview image.")
    path = dataset_services.dataset_output_dir(dataset) / relative
    if not path.resolve().is_relative_to(dataset_services.dataset_output_dir(dataset).resolve()) or not path.exists():
        raise Http404("No such preview image.")
    return FileResponse(open(path, "rb"), content_type="image/png")


def preview_url_name(path: str) -> str:
    return Path(path).name
