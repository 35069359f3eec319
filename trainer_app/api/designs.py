"""Model designs API: create (versioned by name), list, detail, and validate against a dataset."""
from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from trainer_app import selectors
from trainer_app.api.datasets import _project_for
from trainer_app.models import ModelDesign
from trainer_app.services import designs as design_services


class DesignOutput(serializers.ModelSerializer):
    project = serializers.IntegerField(source="project_id")

    class Meta:
        model = ModelDesign
        fields = ["id", "project", "name", "version", "spec", "description", "family", "created_at"]


class DesignInput(serializers.Serializer):
    project = serializers.IntegerField()
    name = serializers.CharField(max_length=120)
    spec = serializers.JSONField()
    description = serializers.CharField(required=False, allow_blank=True, default="")


class ValidateInput(serializers.Serializer):
    spec = serializers.JSONField()
    dataset = serializers.IntegerField()


class DesignListView(APIView):
    @extend_schema(responses=DesignOutput(many=True))
    def get(self, request):
        return Response(DesignOutput(selectors.design_list(user=request.user), many=True).data)

    @extend_schema(request=DesignInput, responses={201: DesignOutput})
    def post(self, request):
        data = DesignInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        project = _project_for(request.user, values["project"])
        design = design_services.design_create(project=project, name=values["name"], spec=values["spec"],
                                               description=values["description"], created_by=request.user)
        return Response({**DesignOutput(design).data}, status=status.HTTP_201_CREATED)


class DesignDetailView(APIView):
    @extend_schema(responses=DesignOutput)
    def get(self, request, design_id: int):
        return Response(DesignOutput(get_object_or_404(selectors.design_list(user=request.user), id=design_id)).data)


class DesignValidateView(APIView):
    """Each layer's output shape, parameters and multiply-adds on the dataset's input, or the layer at
    fault and the fix."""

    @extend_schema(request=ValidateInput, responses=OpenApiTypes.OBJECT)
    def post(self, request):
        data = ValidateInput(data=request.data)
        data.is_valid(raise_exception=True)
        dataset = selectors.dataset_list(user=request.user).filter(id=data.validated_data["dataset"]).first()
        if dataset is None:
            raise ValidationError({"dataset": "No such dataset among your projects."})
        if dataset.status != "ready":
            raise ValidationError({"dataset": f"{dataset} is {dataset.status}: its shapes are known once it is ready."})
        return Response(design_services.design_validate(spec=data.validated_data["spec"], dataset=dataset))
