"""Reads about designs and runs, always scoped to the user's projects."""
from __future__ import annotations

from django.db.models import QuerySet

from trainer_app.models import ModelDesign, Run
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
