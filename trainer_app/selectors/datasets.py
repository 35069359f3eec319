"""Reads about datasets, always scoped to the user's projects."""
from __future__ import annotations

from django.db.models import QuerySet

from trainer_app.models import Dataset
from trainer_app.selectors.projects import project_list


def dataset_list(*, user, project_id: int | None = None) -> QuerySet[Dataset]:
    datasets = Dataset.objects.filter(project__in=project_list(user=user)).select_related("project")
    if project_id is not None:
        datasets = datasets.filter(project_id=project_id)
    return datasets.order_by("project__name", "name", "-version")


def dataset_versions(*, dataset: Dataset) -> QuerySet[Dataset]:
    return Dataset.objects.filter(project=dataset.project, name=dataset.name).order_by("-version")
