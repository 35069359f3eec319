"""Datasets API: upload (whole or chunked), status with progress, detail, versions, delete."""
from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from trainer_app import selectors
from trainer_app.api.errors import conflict
from trainer_app.models import Dataset, SiteSettings, Upload
from trainer_app.services import datasets as dataset_services


class DatasetOutput(serializers.ModelSerializer):
    project = serializers.IntegerField(source="project_id")
    previous = serializers.IntegerField(source="previous_id", allow_null=True)
    locked = serializers.BooleanField(source="is_locked")

    class Meta:
        model = Dataset
        fields = ["id", "project", "name", "version", "previous", "status", "error", "progress", "progress_message",
                  "task", "modality", "num_samples", "num_classes", "input_shape", "splits", "class_names",
                  "feature_names", "detected_format", "sha256", "size_bytes", "original_filename", "source",
                  "options", "warnings", "class_balance", "statistics", "locked", "created_at", "processed_at"]


class DatasetInput(serializers.Serializer):
    project = serializers.IntegerField()
    name = serializers.CharField(max_length=120)
    file = serializers.FileField(required=False)
    upload = serializers.IntegerField(required=False, help_text="id of a finished chunked upload instead of file")
    target_column = serializers.CharField(required=False, allow_blank=True)
    task = serializers.ChoiceField(choices=["auto", "classification", "regression"], required=False)


class UploadOutput(serializers.ModelSerializer):
    class Meta:
        model = Upload
        fields = ["id", "filename", "size", "received", "completed_at"]


class UploadInput(serializers.Serializer):
    project = serializers.IntegerField()
    filename = serializers.CharField(max_length=255)
    size = serializers.IntegerField(min_value=1)


def _project_for(user, project_id: int):
    project = selectors.project_list(user=user).filter(id=project_id).first()
    if project is None:
        raise ValidationError({"project": f"No project {project_id} among yours: use an id from GET /api/projects/."})
    return project


class DatasetListView(APIView):
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(parameters=[OpenApiParameter("project", int, required=False)], responses=DatasetOutput(many=True))
    def get(self, request):
        project = request.query_params.get("project")
        if project is not None and not project.isdigit():
            raise ValidationError({"project": f"project must be a project id, not {project!r}."})
        datasets = selectors.dataset_list(user=request.user, project_id=int(project) if project else None)
        return Response(DatasetOutput(datasets, many=True).data)

    @extend_schema(request={"multipart/form-data": DatasetInput}, responses={201: DatasetOutput})
    def post(self, request):
        # Refuse an oversized body before reading it: the limit is checked against Content-Length.
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        limit = dataset_services.max_upload_bytes()
        if declared > limit + 1024 * 1024:
            return Response({"file": [f"The upload is {declared} bytes, over the {limit}-byte limit: split it, or ask "
                                      "an admin to raise the upload limit."]},
                            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        data = DatasetInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        project = _project_for(request.user, values["project"])
        upload = None
        if "upload" in values:
            upload = Upload.objects.filter(id=values["upload"], created_by=request.user).first()
            if upload is None:
                raise ValidationError({"upload": "No such upload of yours: start one with POST /api/uploads/."})
        options = {key: value for key, value in request.data.items() if key in dataset_services.OPTION_FIELDS}
        dataset = dataset_services.dataset_create(project=project, name=values["name"], created_by=request.user,
                                                  options=options, file=values.get("file"), upload=upload)
        return Response(DatasetOutput(dataset).data, status=status.HTTP_201_CREATED)


class DatasetDetailView(APIView):
    def _get(self, request, dataset_id: int) -> Dataset:
        return get_object_or_404(selectors.dataset_list(user=request.user), id=dataset_id)

    @extend_schema(responses=DatasetOutput)
    def get(self, request, dataset_id: int):
        return Response(DatasetOutput(self._get(request, dataset_id)).data)

    @extend_schema(responses={204: None, 409: OpenApiTypes.OBJECT})
    def delete(self, request, dataset_id: int):
        dataset = self._get(request, dataset_id)
        try:
            dataset_services.dataset_delete(dataset=dataset, actor=request.user)
        except DjangoValidationError as error:
            return conflict(error)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UploadStartView(APIView):
    @extend_schema(request=UploadInput, responses={201: UploadOutput})
    def post(self, request):
        data = UploadInput(data=request.data)
        data.is_valid(raise_exception=True)
        project = _project_for(request.user, data.validated_data["project"])
        upload = dataset_services.upload_start(project=project, created_by=request.user,
                                               filename=data.validated_data["filename"],
                                               size=data.validated_data["size"])
        return Response(UploadOutput(upload).data, status=status.HTTP_201_CREATED)


class UploadChunkView(APIView):
    """GET: how much has arrived (to resume). PUT ?offset=N with the raw chunk as the body."""

    parser_classes: list = []  # the body is the raw chunk, read as bytes

    def _get(self, request, upload_id: int) -> Upload:
        upload = Upload.objects.filter(id=upload_id, created_by=request.user).first()
        if upload is None:
            raise NotFound("No such upload of yours.")
        return upload

    @extend_schema(responses=UploadOutput)
    def get(self, request, upload_id: int):
        return Response(UploadOutput(self._get(request, upload_id)).data)

    @extend_schema(request={"application/octet-stream": bytes}, responses=UploadOutput,
                   parameters=[OpenApiParameter("offset", int, required=True)])
    def put(self, request, upload_id: int):
        upload = self._get(request, upload_id)
        offset = request.query_params.get("offset", "")
        if not offset.isdigit():
            raise ValidationError({"offset": "Give ?offset= the byte position this chunk starts at."})
        chunk = request.body
        try:
            upload = dataset_services.upload_append(upload=upload, offset=int(offset), chunk=chunk)
        except DjangoValidationError as error:
            upload.refresh_from_db()
            return conflict(error, received=upload.received)
        return Response(UploadOutput(upload).data)


class RegisterInput(serializers.Serializer):
    project = serializers.IntegerField()
    name = serializers.CharField(max_length=120)
    path = serializers.CharField(help_text="absolute path of a directory on the workers' shared storage")


class DatasetRegisterView(APIView):
    """Admins register a directory already on shared storage (an ImageFolder tree or a canonical
    dataset); it is checked and converted like an upload, without copying the source."""

    @extend_schema(request=RegisterInput, responses={201: DatasetOutput})
    def post(self, request):
        data = RegisterInput(data=request.data)
        data.is_valid(raise_exception=True)
        project = _project_for(request.user, data.validated_data["project"])
        options = {key: value for key, value in request.data.items() if key in dataset_services.OPTION_FIELDS}
        dataset = dataset_services.dataset_register_directory(
            project=project, name=data.validated_data["name"], path=data.validated_data["path"],
            created_by=request.user, options=options)
        return Response(DatasetOutput(dataset).data, status=status.HTTP_201_CREATED)


class SiteSettingsSerializer(serializers.ModelSerializer):
    class Meta:
        model = SiteSettings
        fields = ["max_upload_bytes"]

    def validate_max_upload_bytes(self, value: int) -> int:
        if value < 1024 * 1024:
            raise serializers.ValidationError("Set the upload limit to at least 1 MB (1048576 bytes).")
        return value


class SiteSettingsView(APIView):
    """Settings admins change at run time: the largest dataset file accepted (default 5 GB)."""

    @extend_schema(responses=SiteSettingsSerializer)
    def get(self, request):
        return Response(SiteSettingsSerializer(SiteSettings.current()).data)

    @extend_schema(request=SiteSettingsSerializer, responses=SiteSettingsSerializer)
    def patch(self, request):
        if not selectors.user_is_site_admin(request.user):
            raise PermissionDenied("Only admins can change site settings.")
        serializer = SiteSettingsSerializer(SiteSettings.current(), data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(serializer.data)
