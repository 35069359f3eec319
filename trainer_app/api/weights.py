"""Weights API: upload a .safetensors file to fine-tune from (a pickle is refused), list them; the
layers of a design that can be frozen."""
from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from trainer_app import selectors
from trainer_app.api.datasets import _project_for
from trainer_app.models import WeightsFile
from trainer_app.services.weights import weights_upload


class WeightsOutput(serializers.ModelSerializer):
    project = serializers.IntegerField(source="project_id")

    class Meta:
        model = WeightsFile
        fields = ["id", "project", "name", "size_bytes", "sha256", "tensors", "created_at"]


class WeightsInput(serializers.Serializer):
    project = serializers.IntegerField()
    name = serializers.CharField(required=False, allow_blank=True, default="", max_length=120)
    file = serializers.FileField()


class WeightsListView(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(responses=WeightsOutput(many=True))
    def get(self, request):
        files = WeightsFile.objects.filter(project__in=selectors.project_list(user=request.user))
        return Response(WeightsOutput(files, many=True).data)

    @extend_schema(request={"multipart/form-data": WeightsInput}, responses={201: WeightsOutput})
    def post(self, request):
        data = WeightsInput(data=request.data)
        data.is_valid(raise_exception=True)
        project = _project_for(request.user, data.validated_data["project"])
        weights = weights_upload(project=project, name=data.validated_data["name"],
                                 file=data.validated_data["file"], created_by=request.user)
        return Response(WeightsOutput(weights).data, status=status.HTTP_201_CREATED)


class DesignLayersView(APIView):
    """The layer names of a design on a dataset, to offer as freeze prefixes when fine-tuning."""

    @extend_schema(parameters=[OpenApiParameter("dataset", int, required=True)], responses=OpenApiTypes.OBJECT)
    def get(self, request, design_id: int):
        from trainer_app.engine.design import DesignError
        from trainer_app.engine.models import freezable_layers

        design = get_object_or_404(selectors.design_list(user=request.user), id=design_id)
        dataset_id = request.query_params.get("dataset", "")
        dataset = selectors.dataset_list(user=request.user).filter(id=int(dataset_id)).first() \
            if dataset_id.isdigit() else None
        if dataset is None or dataset.status != "ready":
            raise ValidationError({"dataset": "Give ?dataset=<id> of a ready dataset of yours."})
        classes = dataset.num_classes if dataset.task == "classification" else 1
        try:
            return Response({"layers": freezable_layers(design.spec, dataset.input_shape, classes or 1)})
        except DesignError as error:
            raise ValidationError({"model": str(error)}) from None
