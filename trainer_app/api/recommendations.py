"""Recommendations API: what did best on a dataset and on similar ones, with the runs behind each, a link that
launches it and a link that starts a sweep warm-started from them."""
from __future__ import annotations

import json
from urllib.parse import urlencode

from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from trainer_app import selectors
from trainer_app.selectors.recommendations import dataset_recommendations, recommendation_warm_start

WARM_START_TRIALS = 3


def _launch_url(dataset, recommendation: dict) -> str:
    """The launch form filled in from the group's best run ("clone and edit"), on the asked dataset."""
    query = {"from": recommendation["best_run"], "dataset": dataset.pk, "project": dataset.project_id}
    return f"{reverse('run-launch')}?{urlencode(query)}"


def _sweep_url(dataset, params: list[dict]) -> str:
    """The new-sweep form on the dataset with these parameter sets as its trials to try first."""
    lines = "\n".join(json.dumps(entry, sort_keys=True) for entry in params)
    query = {"project": dataset.project_id, "dataset": dataset.pk, "warm_start": lines}
    return f"{reverse('sweep-new')}?{urlencode(query)}"


class DatasetRecommendationsView(APIView):
    """GET /api/datasets/{id}/recommendations/: the best designs and settings on this dataset and on similar
    ones (same task; similarity from input shape, classes and size, with its reasons), each with its
    evidence (run ids, n, mean ± std of the best validation value); with no history, the defaults and why."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, dataset_id: int):
        dataset = get_object_or_404(selectors.dataset_list(user=request.user), id=dataset_id)
        answer = dataset_recommendations(user=request.user, dataset=dataset)
        for recommendation in answer["recommendations"]:
            recommendation["launch_url"] = _launch_url(dataset, recommendation)
        if answer["defaults"]:
            answer["defaults"]["launch_url"] = (f"{reverse('run-launch')}?" + urlencode(
                {"dataset": dataset.pk, "project": dataset.project_id, "model": answer["defaults"]["model"]}))
        answer["warm_start"] = recommendation_warm_start(answer, limit=WARM_START_TRIALS)
        answer["sweep_url"] = _sweep_url(dataset, answer["warm_start"])
        return Response(answer)
