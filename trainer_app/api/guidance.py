"""Guidance API: settings that fit the data, and the learning-rate finder."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from trainer_app import selectors
from trainer_app.api.runs import RunInput, RunOutput, training_inputs
from trainer_app.engine.config import OPTIMIZERS
from trainer_app.engine.design import PRESETS
from trainer_app.selectors.defaults import dataset_training_defaults
from trainer_app.services.lr_finder import lr_finder_create, lr_finder_result


class DatasetDefaultsView(APIView):
    @extend_schema(parameters=[OpenApiParameter("model", int, required=False), OpenApiParameter("preset", str, required=False),
                               OpenApiParameter("optimizer", str, required=False),
                               OpenApiParameter("processes", int, required=False)], responses=dict)
    def get(self, request, dataset_id: int):
        """Batch size, learning rate and epochs proposed from the dataset's size and shape and the model, each
        with the reason (`reasons`)."""
        dataset = selectors.dataset_list(user=request.user).filter(id=dataset_id).first()
        if dataset is None:
            raise NotFound("No such dataset among your projects.")
        params = request.query_params
        optimizer = params.get("optimizer", "adam")
        if optimizer not in OPTIMIZERS:
            raise ValidationError({"optimizer": f"{optimizer!r} is not one of {', '.join(OPTIMIZERS)}."})
        processes = params.get("processes", "1")
        if not processes.isdigit() or int(processes) < 1:
            raise ValidationError({"processes": f"processes is a whole number of at least 1, not {processes!r}."})
        design, preset = None, params.get("preset") or None
        if params.get("model"):
            if not params["model"].isdigit():
                raise ValidationError({"model": f"model is a design id, not {params['model']!r}."})
            design = selectors.design_list(user=request.user, project_id=dataset.project_id).filter(
                id=int(params["model"])).first()
            if design is None:
                raise ValidationError({"model": f"No model design {params['model']} in this dataset's project."})
        if preset is not None and preset not in PRESETS:
            raise ValidationError({"preset": f"{preset!r} is not one of {', '.join(PRESETS)}."})
        if dataset.status != "ready":
            raise ValidationError({"dataset": f"{dataset} is {dataset.status}: its size is known once it is ready."})
        return Response(dataset_training_defaults(dataset=dataset, design=design, preset=preset, optimizer=optimizer,
                                                  processes=int(processes)))


class LrFinderView(APIView):
    @extend_schema(request=RunInput, responses={201: RunOutput})
    def post(self, request):
        """Start a learning-rate finder (a run of kind lr_finder) with the settings a run would have; follow it
        at GET /api/runs/{id}/lr-finder/."""
        data = RunInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        project, dataset, design = training_inputs(request.user, values)
        run = lr_finder_create(project=project, dataset=dataset, design=design, config=values["config"],
                               resources=values["resources"], queue_name=values["queue"], created_by=request.user)
        return Response(RunOutput(run).data, status=status.HTTP_201_CREATED)


class LrFinderResultView(APIView):
    @extend_schema(responses=dict)
    def get(self, request, run_id: int):
        """{"status", "curve": [{"lr", "loss"}], "suggested_lr", "min_loss_lr", "error"}."""
        run = selectors.run_list(user=request.user).filter(id=run_id).first()
        if run is None:
            raise NotFound("No such run among your projects.")
        if run.kind != "lr_finder":
            raise ValidationError({"run": f"Run {run_id} is a {run.kind}, not a learning-rate finder."})
        return Response(lr_finder_result(run=run))
