"""Sweeps API: create, list, detail (trials), live control, charts, promote."""
from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from trainer_app import studies
from trainer_app.api.runs import training_inputs
from trainer_app.models import Sweep
from trainer_app.selectors.sweeps import ChartError, sweep_chart, sweep_detail, sweep_list
from trainer_app.services import sweeps as sweep_services


class SweepOutput(serializers.ModelSerializer):
    project = serializers.IntegerField(source="project_id")
    dataset = serializers.IntegerField(source="dataset_id")
    model = serializers.IntegerField(source="design_id")
    queue = serializers.CharField(source="queue.name")
    objective = serializers.SerializerMethodField()

    class Meta:
        model = Sweep
        fields = ["id", "project", "name", "dataset", "model", "config", "search_space", "objective", "objectives",
                  "sampler", "pruner", "n_trials", "timeout_s", "target_value", "parallelism", "max_retries", "seed",
                  "resources", "queue", "status", "error", "end_reason", "warnings", "best", "counts",
                  "created_at", "started_at", "finished_at"]

    def get_objective(self, sweep) -> dict:
        return sweep.objectives[0] if sweep.objectives else {}


class SweepInput(serializers.Serializer):
    project = serializers.IntegerField()
    dataset = serializers.IntegerField()
    model = serializers.IntegerField()
    name = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    config = serializers.JSONField(required=False, default=dict)
    search_space = serializers.JSONField()
    objective = serializers.JSONField(required=False, default=None, allow_null=True,
                                      help_text='{"metric": "val_accuracy", "direction": "maximize"}')
    objectives = serializers.JSONField(required=False, default=None, allow_null=True, help_text="several objectives: a Pareto front")
    sampler = serializers.CharField(required=False, default="tpe", help_text=", ".join(studies.SAMPLERS))
    pruner = serializers.CharField(required=False, default="none", help_text=", ".join(studies.PRUNERS))
    n_trials = serializers.JSONField(required=False, default=20)
    parallelism = serializers.JSONField(required=False, default=2)
    timeout_s = serializers.JSONField(required=False, default=None, allow_null=True)
    target_value = serializers.JSONField(required=False, default=None, allow_null=True)
    max_retries = serializers.JSONField(required=False, default=2)
    seed = serializers.IntegerField(required=False, default=0)
    queue = serializers.CharField(required=False, default="cpu")
    resources = serializers.JSONField(required=False, default=dict)
    confirm_partial_grid = serializers.BooleanField(required=False, default=False)
    warm_start = serializers.JSONField(required=False, default=list,
                                       help_text="parameter sets to try first (e.g. from recommendations)")

    def validate(self, data):
        if data["objective"] is None and data["objectives"] is None:
            raise serializers.ValidationError({"objective": 'Give the metric to optimise, e.g. {"metric": '
                                                            '"val_accuracy", "direction": "maximize"}.'})
        if not isinstance(data["warm_start"], list) or not all(isinstance(item, dict) for item in data["warm_start"]):
            raise serializers.ValidationError({"warm_start": "warm_start is a list of {parameter: value} objects."})
        return data


def _sweep_for(user, sweep_id: int) -> Sweep:
    sweep = sweep_list(user=user).filter(id=sweep_id).select_related("project", "created_by").first()
    if sweep is None:
        raise NotFound("No such sweep among your projects.")
    return sweep


def _with_detail(sweep: Sweep) -> dict:
    data = SweepOutput(sweep).data
    data.update(sweep_detail(sweep))
    return data


class SweepListView(APIView):
    @extend_schema(parameters=[OpenApiParameter("project", int, required=False)], responses=SweepOutput(many=True))
    def get(self, request):
        project = request.query_params.get("project")
        if project is not None and not project.isdigit():
            raise ValidationError({"project": f"project is a project id, not {project!r}."})
        sweeps = sweep_list(user=request.user, project_id=int(project) if project else None)
        return Response(SweepOutput(sweeps[:500], many=True).data)

    @extend_schema(request=SweepInput, responses={201: SweepOutput})
    def post(self, request):
        data = SweepInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        project, dataset, design = training_inputs(request.user, values)
        try:
            sweep = self._create(request, values, project, dataset, design)
        except DjangoValidationError as error:
            detail = getattr(error, "message_dict", None) or {"detail": error.messages}
            if "grid_size" in detail:  # the count, as a number, for the form's confirmation
                detail = {**detail, "grid_size": int(detail["grid_size"][0])}
            return Response(detail, status=status.HTTP_400_BAD_REQUEST)
        return Response(SweepOutput(sweep).data, status=status.HTTP_201_CREATED)

    @staticmethod
    def _create(request, values, project, dataset, design) -> Sweep:
        return sweep_services.sweep_create(
            project=project, dataset=dataset, design=design, config=values["config"],
            search_space=values["search_space"], objective=values["objective"], objectives=values["objectives"],
            sampler=values["sampler"], pruner=values["pruner"], n_trials=values["n_trials"],
            parallelism=values["parallelism"], timeout_s=values["timeout_s"], target_value=values["target_value"],
            queue_name=values["queue"], resources=values["resources"], created_by=request.user, name=values["name"],
            confirm_partial_grid=values["confirm_partial_grid"], max_retries=values["max_retries"],
            seed=values["seed"], warm_start=values["warm_start"])


class SweepDetailView(APIView):
    @extend_schema(responses=SweepOutput)
    def get(self, request, sweep_id: int):
        """The sweep with its trials (state, parameters, value, duration, intermediate values, why pruned)."""
        return Response(_with_detail(_sweep_for(request.user, sweep_id)))

    @extend_schema(request=None, responses=SweepOutput)
    def patch(self, request, sweep_id: int):
        """Change `parallelism` (while it runs) or `name`."""
        sweep = _sweep_for(request.user, sweep_id)
        unknown = set(request.data) - {"parallelism", "name"}
        if unknown:
            raise ValidationError({sorted(unknown)[0]: "Only parallelism and name can change on a sweep."})
        sweep = sweep_services.sweep_update(sweep=sweep, parallelism=request.data.get("parallelism"),
                                            name=request.data.get("name"))
        return Response(_with_detail(sweep))


class SweepActionView(APIView):
    action_name = ""

    @extend_schema(request=None, responses=SweepOutput)
    def post(self, request, sweep_id: int):
        sweep = _sweep_for(request.user, sweep_id)
        action = {"pause": sweep_services.sweep_pause, "resume": sweep_services.sweep_resume,
                  "stop": sweep_services.sweep_stop}[self.action_name]
        return Response(_with_detail(action(sweep=sweep)))


class TrialStopView(APIView):
    @extend_schema(request=None, responses=SweepOutput)
    def post(self, request, sweep_id: int, number: int):
        """Stop one trial: its run checkpoints and stops; the trial is recorded as stopped by a user."""
        sweep = _sweep_for(request.user, sweep_id)
        sweep_services.trial_stop(sweep=sweep, number=number)
        return Response(_with_detail(get_object_or_404(Sweep, pk=sweep.pk)))


class SweepPromoteView(APIView):
    @extend_schema(request=None, responses={201: None})
    def post(self, request, sweep_id: int):
        """A full run from a trial's settings: `trial` (number; the best by default), `epochs` (default twice
        the sweep's), `queue`."""
        from trainer_app.api.runs import RunOutput

        sweep = _sweep_for(request.user, sweep_id)
        number = request.data.get("trial")
        if number is not None and (isinstance(number, bool) or not isinstance(number, int)):
            raise ValidationError({"trial": f"trial is a trial number, not {number!r}."})
        run = sweep_services.sweep_promote(sweep=sweep, created_by=request.user, number=number,
                                           epochs=request.data.get("epochs"), queue_name=request.data.get("queue"))
        return Response(RunOutput(run).data, status=status.HTTP_201_CREATED)


class SweepChartView(APIView):
    @extend_schema(parameters=[OpenApiParameter("params", str, required=False)], responses=dict)
    def get(self, request, sweep_id: int, chart: str):
        """One Optuna chart as Plotly JSON (history, importances, parallel, contour, slice, edf, timeline,
        pareto, intermediate), or {"empty": why} while there is not enough to draw."""
        sweep = _sweep_for(request.user, sweep_id)
        params = [name for name in request.query_params.get("params", "").split(",") if name]
        unknown = [name for name in params if name not in sweep.search_space]
        if unknown:
            raise ValidationError({"params": f"Unknown parameter {unknown[0]!r}: this sweep searches "
                                             f"{', '.join(sweep.search_space)}."})
        try:
            return Response(sweep_chart(sweep, chart, params=params or None))
        except ChartError as error:
            raise ValidationError({"chart": str(error)}) from None


