"""Runs API: launch, list, detail, cancel, resume, move and requeue (admins), metrics, checkpoints."""
from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from trainer_app import selectors
from trainer_app.api.datasets import _project_for
from trainer_app.api.errors import conflict
from trainer_app.models import Checkpoint, Run, RunNode, WeightsFile
from trainer_app.selectors.compare import MAX_COMPARED, compare_metric_names, compare_runs
from trainer_app.selectors.fleet import run_queue_place
from trainer_app.selectors.metrics import metric_names, metric_series
from trainer_app.selectors.run_filters import RunFilterError, filter_runs, order_runs
from trainer_app.selectors.run_health import finding_payload, run_finding_list
from trainer_app.services import runs as run_services
from trainer_app.services import steering
from trainer_app.specs import checkpoint_weights

MAX_POINTS = 20_000
MAX_LIST = 1000


class RunOutput(serializers.ModelSerializer):
    tags = serializers.ListField(child=serializers.CharField(), read_only=True)
    project = serializers.IntegerField(source="project_id")
    dataset = serializers.IntegerField(source="dataset_id")
    model = serializers.IntegerField(source="design_id")
    queue = serializers.CharField(source="queue.name")
    fine_tuned_from = serializers.IntegerField(source="fine_tuned_from_id", allow_null=True)
    init_weights = serializers.IntegerField(source="init_weights_id", allow_null=True)
    worker = serializers.CharField(source="worker.name", allow_null=True, default=None)
    preempted_by = serializers.IntegerField(source="preempted_by_id", allow_null=True, read_only=True,
                                            help_text="the run of higher priority that last preempted this one")

    class Meta:
        model = Run
        fields = ["id", "project", "dataset", "model", "name", "kind", "status", "error", "summary", "config",
                  "resources", "queue", "priority", "fine_tuned_from", "init_weights", "init", "step", "total_steps", "epoch",
                  "deliveries", "worker", "exit_code", "log_tail", "tags", "notes", "starred", "archived",
                  "cancel_requested", "created_at", "started_at", "finished_at", "sweep", "trial_number",
                  "model_spec", "requeue_requested", "preempted_by", "preempted_at", "preemptions"]


class RunInput(serializers.Serializer):
    project = serializers.IntegerField()
    dataset = serializers.IntegerField()
    model = serializers.IntegerField()
    name = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    config = serializers.JSONField(required=False, default=dict)
    resources = serializers.JSONField(required=False, default=dict)
    queue = serializers.CharField(required=False, default="cpu")
    fine_tune_from = serializers.IntegerField(required=False, allow_null=True, default=None)
    init_weights = serializers.IntegerField(required=False, allow_null=True, default=None,
                                            help_text="id of uploaded weights (POST /api/weights/)")
    freeze = serializers.ListField(child=serializers.CharField(), required=False, default=list)

    def validate_config(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError('config is an object, e.g. {"optimizer": "adam", "lr": 0.001}.')
        return value

    def validate_resources(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError('resources is an object, e.g. {"nproc_per_node": 2}.')
        return value


def training_inputs(user, values: dict) -> tuple:
    """(project, dataset, design) named by a launch body (project, dataset, model ids), each among the user's:
    a 404 for a project they are not in, a 400 naming the dataset or design the project does not have."""
    project = _project_for(user, values["project"])
    dataset = selectors.dataset_list(user=user, project_id=project.pk).filter(id=values["dataset"]).first()
    design = selectors.design_list(user=user, project_id=project.pk).filter(id=values["model"]).first()
    if dataset is None:
        raise ValidationError({"dataset": f"No dataset {values['dataset']} in project {project.name}."})
    if design is None:
        raise ValidationError({"model": f"No model design {values['model']} in project {project.name}."})
    return project, dataset, design


LIST_FILTERS = ("project", "dataset", "model", "status", "user", "tag", "created_after", "created_before",
                "search", "starred", "archived", "order", "limit", "offset")


class RunListView(APIView):
    @extend_schema(parameters=[OpenApiParameter(name, str, required=False) for name in LIST_FILTERS],
                   responses=RunOutput(many=True))
    def get(self, request):
        """Filter by project, dataset, model, status (comma-separated), user, tag, created_after/before
        (dates), search, starred, archived; order by created, status, name, id or
        metric:<name>:<last|best|min|max> (a leading - reverses); limit (≤ 1000) and offset."""
        params = request.query_params
        limit, offset = params.get("limit", "100"), params.get("offset", "0")
        if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIST:
            raise ValidationError({"limit": f"limit must be from 1 to {MAX_LIST}, not {limit!r}."})
        if not offset.isdigit():
            raise ValidationError({"offset": f"offset must be a whole number, not {offset!r}."})
        try:
            runs = order_runs(filter_runs(selectors.run_list(user=request.user), params), params.get("order"))
        except RunFilterError as error:
            raise ValidationError({error.parameter: str(error)}) from None
        total = runs.count()
        page = runs.prefetch_related("tag_set").select_related("worker")[int(offset):int(offset) + int(limit)]
        response = Response(RunOutput(page, many=True).data)
        response["X-Total-Count"] = str(total)
        return response

    @extend_schema(request=RunInput, responses={201: RunOutput})
    def post(self, request):
        data = RunInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        project, dataset, design = training_inputs(request.user, values)
        parent = None
        if values["fine_tune_from"] is not None:
            parent = selectors.run_list(user=request.user).filter(id=values["fine_tune_from"]).first()
            if parent is None:
                raise ValidationError({"fine_tune_from": "No such run among your projects."})
        weights = None
        if values["init_weights"] is not None:
            weights = WeightsFile.objects.filter(id=values["init_weights"], project=project).first()
            if weights is None:
                raise ValidationError({"init_weights": f"No uploaded weights {values['init_weights']} in project "
                                                       f"{project.name}."})
        run = run_services.run_create(project=project, dataset=dataset, design=design, config=values["config"],
                                      resources=values["resources"], queue_name=values["queue"],
                                      created_by=request.user, name=values["name"], fine_tune_from=parent,
                                      init_weights=weights, freeze=values["freeze"])
        return Response(RunOutput(run).data, status=status.HTTP_201_CREATED)


def _run(request, run_id: int) -> Run:
    return get_object_or_404(selectors.run_list(user=request.user), id=run_id)


class RunUpdateInput(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    notes = serializers.CharField(required=False, allow_blank=True)
    starred = serializers.BooleanField(required=False)
    archived = serializers.BooleanField(required=False)
    tags = serializers.ListField(child=serializers.CharField(), required=False)


class RunNodeOutput(serializers.ModelSerializer):
    """One node of a multi-node run's gang."""

    class Meta:
        model = RunNode
        fields = ["node_rank", "worker_name", "address", "cuda_visible_devices", "rendezvous", "state", "exit_code",
                  "error", "claimed_at", "heartbeat_at"]


class RunDetailOutput(RunOutput):
    nodes = RunNodeOutput(many=True, read_only=True, help_text="a multi-node run's node slots (empty for one node)")
    queue_position = serializers.SerializerMethodField(help_text="while queued: 1 = next in its queue")
    estimated_start = serializers.SerializerMethodField(help_text="while queued: when it should start; null = "
                                                                  "unknown (no history, no worker, paused queue)")

    class Meta(RunOutput.Meta):
        fields = [*RunOutput.Meta.fields, "queue_position", "estimated_start", "nodes"]

    def get_queue_position(self, run) -> int | None:
        place = self.context.get("queue_place")
        return place["position"] if place else None

    def get_estimated_start(self, run) -> datetime | None:
        place = self.context.get("queue_place")
        return place["estimated_start"] if place else None


class RunDetailView(APIView):
    @extend_schema(responses=RunDetailOutput)
    def get(self, request, run_id: int):
        run = _run(request, run_id)
        return Response(RunDetailOutput(run, context={"queue_place": run_queue_place(run=run)}).data)

    @extend_schema(request=RunUpdateInput, responses=RunOutput)
    def patch(self, request, run_id: int):
        data = RunUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(RunOutput(run_services.run_update(run=_run(request, run_id), **data.validated_data)).data)


class BulkInput(serializers.Serializer):
    runs = serializers.ListField(child=serializers.IntegerField(), min_length=1, max_length=1000)
    action = serializers.ChoiceField(choices=run_services.BULK_ACTIONS)
    tag = serializers.CharField(required=False, allow_blank=True)


class RunBulkView(APIView):
    """One action on many runs: tag, untag, archive, unarchive, star, unstar, cancel. Runs the user cannot
    see are answered as not found, all or nothing, so no name leaks."""

    @extend_schema(request=BulkInput, responses=OpenApiTypes.OBJECT)
    def post(self, request):
        data = BulkInput(data=request.data)
        data.is_valid(raise_exception=True)
        wanted = set(data.validated_data["runs"])
        runs = list(selectors.run_list(user=request.user).filter(id__in=wanted))
        if len(runs) != len(wanted):
            raise NotFound("Some of those runs do not exist or are not in your projects.")
        return Response(run_services.runs_bulk(runs=runs, action=data.validated_data["action"],
                                               tag=data.validated_data.get("tag")))


class RunCancelView(APIView):
    @extend_schema(request=None, responses=RunOutput)
    def post(self, request, run_id: int):
        try:
            run = run_services.run_cancel(run=_run(request, run_id))
        except DjangoValidationError as error:
            return conflict(error)
        return Response(RunOutput(run).data)


class RunResumeView(APIView):
    @extend_schema(request=None, responses=RunOutput)
    def post(self, request, run_id: int):
        try:
            run = run_services.run_resume(run=_run(request, run_id))
        except DjangoValidationError as error:
            return conflict(error)
        return Response(RunOutput(run).data)


def _steerable_run(request, run_id: int) -> Run:
    """A run a site admin steers (any run: a queue's order is the fleet's, not one project's). A member who is not
    a site admin gets a 403; a run of a project the user cannot see, a 404."""
    if selectors.user_is_site_admin(request.user):
        return get_object_or_404(Run.objects.select_related("queue", "project", "created_by"), id=run_id)
    _run(request, run_id)
    raise PermissionDenied("Only admins steer the queues: ask a site admin to move or requeue this run.")


class RunMoveInput(serializers.Serializer):
    direction = serializers.CharField(required=False, help_text="up, down, top or bottom: one place or to the end of "
                                                                "its queue (taking the priority of the runs it joins)")
    priority = serializers.IntegerField(required=False, help_text="0 (highest) .. 9 (lowest)")
    queue = serializers.CharField(required=False, help_text="another queue's name: it must take the run's resources "
                                                            "and its owner's role; the run takes its priority unless "
                                                            "one is given")


class RunMoveView(APIView):
    """Admins move a waiting run up or down in its queue, to its top or bottom, to another priority or to another
    queue. Answers the run with its new queue_position; 409 when it is not waiting (or already first/last)."""

    @extend_schema(request=RunMoveInput, responses={200: RunDetailOutput, 400: OpenApiTypes.OBJECT,
                                                    403: OpenApiTypes.OBJECT, 409: OpenApiTypes.OBJECT})
    def post(self, request, run_id: int):
        run = _steerable_run(request, run_id)
        data = RunMoveInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        try:
            run = steering.run_move(run=run, direction=values.get("direction"), priority=values.get("priority"),
                                    queue_name=values.get("queue"))
        except steering.SteeringConflict as error:
            return conflict(error)
        return Response(RunDetailOutput(run, context={"queue_place": run_queue_place(run=run)}).data)


class RunRequeueView(APIView):
    """Admins put a run back in its queue: a running one checkpoints and stops first (it then waits at its place
    and resumes from that checkpoint); a cancelled, failed or lost one waits behind the runs already waiting at
    its priority and resumes from its last checkpoint. 409 for a waiting or finished run."""

    @extend_schema(request=None, responses={200: RunOutput, 403: OpenApiTypes.OBJECT, 409: OpenApiTypes.OBJECT})
    def post(self, request, run_id: int):
        try:
            run = steering.run_requeue(run=_steerable_run(request, run_id))
        except DjangoValidationError as error:
            return conflict(error)
        return Response(RunOutput(run).data)


class RunMetricsView(APIView):
    """Series by name, each at most `points` long: min/max buckets keep every spike."""

    @extend_schema(parameters=[OpenApiParameter("names", str, required=False),
                               OpenApiParameter("points", int, required=False)], responses=OpenApiTypes.OBJECT)
    def get(self, request, run_id: int):
        run = _run(request, run_id)
        available = metric_names(run=run)
        raw_points = request.query_params.get("points", "2000")
        if not raw_points.isdigit() or not 2 <= int(raw_points) <= MAX_POINTS:
            raise ValidationError({"points": f"points must be a whole number from 2 to {MAX_POINTS}, not {raw_points!r}."})
        names_param = request.query_params.get("names")
        names = [name for name in names_param.split(",") if name] if names_param else available
        unknown = [name for name in names if name not in available]
        if unknown:
            raise ValidationError({"names": f"Unknown metric(s) {', '.join(unknown)} for this run; it has: "
                                            f"{', '.join(available) or 'none yet'}."})
        return Response({"series": metric_series(run=run, names=names, points=int(raw_points))})


class RunFindingsView(APIView):
    """The problems the run-health rules found in a run (overfitting, divergence…), each with its evidence,
    what it means and the fix; the run page asks every few seconds while the run trains."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, run_id: int):
        run = _run(request, run_id)
        return Response({"run": run.pk, "status": run.status,
                         "findings": [finding_payload(finding) for finding in run_finding_list(run=run)]})


class CheckpointDownloadView(APIView):
    """The weights (.safetensors) of one checkpoint of a run the user can see."""

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request, run_id: int, checkpoint_id: int):
        run = _run(request, run_id)
        checkpoint = get_object_or_404(Checkpoint, id=checkpoint_id, run=run)
        path = checkpoint_weights(checkpoint)
        if not path.exists():
            raise Http404("That checkpoint's file is gone (only the last few and the best are kept).")
        return FileResponse(open(path, "rb"), as_attachment=True,
                            filename=f"run{run.pk}-step{checkpoint.step}.safetensors")


def parse_run_ids(value: str) -> list[int]:
    parts = [part.strip() for part in (value or "").split(",") if part.strip()]
    if not parts or not all(part.isdigit() for part in parts):
        raise ValidationError({"runs": "Give ?runs= as run ids separated by commas, e.g. runs=12,15,19."})
    if len(parts) > MAX_COMPARED:
        raise ValidationError({"runs": f"Compare at most {MAX_COMPARED} runs at once."})
    return list(dict.fromkeys(int(part) for part in parts))


class RunCompareView(APIView):
    """Any number of runs side by side: hyperparameters (which vary), one metric's curves, final values.
    A run the user cannot see makes the whole answer a 404 that names none of them."""

    @extend_schema(parameters=[OpenApiParameter("runs", str, required=True),
                               OpenApiParameter("metric", str, required=False),
                               OpenApiParameter("points", int, required=False)], responses=OpenApiTypes.OBJECT)
    def get(self, request):
        run_ids = parse_run_ids(request.query_params.get("runs", ""))
        available = compare_metric_names(run_ids=run_ids)
        metric = request.query_params.get("metric") or ("val_loss" if "val_loss" in available else
                                                        (available[0] if available else "val_loss"))
        if available and metric not in available:
            raise ValidationError({"metric": f"Unknown metric {metric!r} for these runs; they report: "
                                             f"{', '.join(available)}."})
        raw_points = request.query_params.get("points", "1000")
        if not raw_points.isdigit() or not 2 <= int(raw_points) <= MAX_POINTS:
            raise ValidationError({"points": f"points must be from 2 to {MAX_POINTS}, not {raw_points!r}."})
        result = compare_runs(user=request.user, run_ids=run_ids, metric=metric, points=int(raw_points))
        if result is None:
            raise NotFound("Some of those runs do not exist or are not in your projects.")
        return Response({**result, "metrics": available})
