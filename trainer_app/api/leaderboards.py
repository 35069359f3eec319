"""Leaderboards API: ranked rows (seed groups by default), baseline pinning, CSV export."""
from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from trainer_app import selectors
from trainer_app.selectors.leaderboards import AGGREGATES, leaderboard, leaderboard_metrics
from trainer_app.services import leaderboards as leaderboard_services

MAX_LIMIT = 500


def board_from_query(request):
    """Parse and check the query; every bad parameter is a 400 that names it."""
    params = request.query_params
    dataset_id = params.get("dataset", "")
    if not dataset_id.isdigit():
        raise ValidationError({"dataset": "Give ?dataset=<id> (a dataset id from GET /api/datasets/)."})
    dataset = selectors.dataset_list(user=request.user).filter(id=int(dataset_id)).first()
    if dataset is None:
        from django.http import Http404

        raise Http404
    available = leaderboard_metrics(dataset=dataset)
    metric = params.get("metric") or ("test_accuracy" if "test_accuracy" in available else
                                      (available[0] if available else "test_accuracy"))
    if available and metric not in available:
        raise ValidationError({"metric": f"Unknown metric {metric!r} for this dataset; its runs report: "
                                         f"{', '.join(available)}."})
    aggregate = params.get("aggregate", "best")
    if aggregate not in AGGREGATES:
        raise ValidationError({"aggregate": f"aggregate must be one of {', '.join(AGGREGATES)}, not {aggregate!r}."})
    group = params.get("group", "seed")
    if group not in ("seed", "none"):
        raise ValidationError({"group": f"group must be seed or none, not {group!r}."})
    offset, limit = params.get("offset", "0"), params.get("limit", "50")
    if not offset.isdigit():
        raise ValidationError({"offset": f"offset must be a whole number, not {offset!r}."})
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
        raise ValidationError({"limit": f"limit must be from 1 to {MAX_LIMIT}, not {limit!r}."})
    return leaderboard(user=request.user, dataset=dataset, metric=metric, aggregate=aggregate,
                       group_seeds=group == "seed", offset=int(offset), limit=int(limit)), available


def board_payload(board, available) -> dict:
    return {"dataset": board.dataset.pk, "metric": board.metric, "aggregate": board.aggregate,
            "direction": board.direction, "grouped": board.grouped, "total": board.total,
            "baseline": board.baseline, "metrics": available, "rows": board.rows}


class LeaderboardView(APIView):
    @extend_schema(parameters=[OpenApiParameter(name, str, required=name == "dataset")
                               for name in ("dataset", "metric", "aggregate", "group", "offset", "limit")],
                   responses=OpenApiTypes.OBJECT)
    def get(self, request):
        board, available = board_from_query(request)
        return Response(board_payload(board, available))


class LeaderboardExportView(APIView):
    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR})
    def get(self, request):
        board, _ = board_from_query(request)
        response = HttpResponse(leaderboard_services.leaderboard_csv(board), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="leaderboard-{board.dataset.name}-{board.metric}.csv"'
        return response


class BaselineInput(serializers.Serializer):
    dataset = serializers.IntegerField()
    metric = serializers.CharField(max_length=64)
    config_key = serializers.CharField(max_length=40)


class BaselineView(APIView):
    @extend_schema(request=BaselineInput, responses=OpenApiTypes.OBJECT)
    def post(self, request):
        data = BaselineInput(data=request.data)
        data.is_valid(raise_exception=True)
        dataset = selectors.dataset_list(user=request.user).filter(id=data.validated_data["dataset"]).first()
        if dataset is None:
            raise ValidationError({"dataset": "No such dataset among your projects."})
        baseline = leaderboard_services.leaderboard_pin_baseline(
            user=request.user, dataset=dataset, metric=data.validated_data["metric"],
            config_key=data.validated_data["config_key"])
        return Response({"dataset": dataset.pk, "metric": baseline.metric, "config_key": baseline.config_key})
