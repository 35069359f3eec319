"""API views: one per resource, explicit input and output serializers, domain work in services."""
from __future__ import annotations

from django.contrib.auth import authenticate
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from trainer_app import health, selectors, services
from trainer_app.api import serializers as s
from trainer_app.api.permissions import IsSiteAdmin
from trainer_app.models import Queue, Worker
from trainer_app.selectors.fleet import queue_list
from trainer_app.services import fleet as fleet_services
from trainer_app.services import queues as queue_services


class TokenView(APIView):
    """Exchange a user name and password for an API token (rate-limited like the login page)."""

    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(request=s.TokenInput, responses=s.TokenOutput)
    def post(self, request):
        data = s.TokenInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(request=request, **data.validated_data)
        if getattr(request, "axes_locked_out", False):
            return Response({"detail": "Too many failed attempts for this user from this address: "
                             "wait and try again later, or ask an admin to unlock the account."},
                            status=status.HTTP_429_TOO_MANY_REQUESTS)
        if user is None:
            return Response({"detail": "Wrong user name or password."}, status=status.HTTP_400_BAD_REQUEST)
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


class ProjectListView(APIView):
    @extend_schema(responses=s.ProjectOutput(many=True))
    def get(self, request):
        rows = [{"id": p.id, "name": p.name, "description": p.description, "role": role}
                for p, role in selectors.project_list_with_roles(user=request.user)]
        return Response(s.ProjectOutput(rows, many=True).data)

    @extend_schema(request=s.ProjectInput, responses={201: s.ProjectOutput})
    def post(self, request):
        if not selectors.user_is_site_admin(request.user):
            raise PermissionDenied("Only admins can create projects.")
        data = s.ProjectInput(data=request.data)
        data.is_valid(raise_exception=True)
        project = services.project_create(created_by=request.user, **data.validated_data)
        output = {"id": project.id, "name": project.name, "description": project.description, "role": "admin"}
        return Response(s.ProjectOutput(output).data, status=status.HTTP_201_CREATED)


class ProjectDetailView(APIView):
    @extend_schema(responses=s.ProjectOutput)
    def get(self, request, project_id: int):
        project = get_object_or_404(selectors.project_list(user=request.user), id=project_id)
        role = selectors.user_project_role(request.user, project)
        return Response(s.ProjectOutput({"id": project.id, "name": project.name,
                                         "description": project.description, "role": role}).data)


class ProjectMembersView(APIView):
    @extend_schema(responses=s.MembershipOutput(many=True))
    def get(self, request, project_id: int):
        project = get_object_or_404(selectors.project_list(user=request.user), id=project_id)
        return Response(s.MembershipOutput(project.memberships.select_related("user"), many=True).data)

    @extend_schema(request=s.MembershipInput, responses=s.MembershipOutput)
    def post(self, request, project_id: int):
        project = get_object_or_404(selectors.project_list(user=request.user), id=project_id)
        data = s.MembershipInput(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.membership_set(project=project, actor=request.user, **data.validated_data)
        return Response(s.MembershipOutput(membership).data)


class HealthView(APIView):
    """Database, broker, graph and workers, each with ok, latency and (for admins) the URL checked."""

    permission_classes = [AllowAny]

    @extend_schema(responses={200: OpenApiTypes.OBJECT, 503: OpenApiTypes.OBJECT})
    def get(self, request):
        report = health.health_report()
        if not selectors.user_is_site_admin(request.user):
            # Anyone (a load balancer) may learn whether we are healthy, not where our services live.
            report = {name: {"ok": part["ok"], "latency_ms": part["latency_ms"]} for name, part in report.items()}
        healthy = all(part["ok"] for part in report.values())
        return Response(report, status=status.HTTP_200_OK if healthy else status.HTTP_503_SERVICE_UNAVAILABLE)


class WorkerListView(APIView):
    permission_classes = [IsSiteAdmin]

    @extend_schema(responses=s.WorkerOutput(many=True))
    def get(self, request):
        return Response(s.WorkerOutput(selectors.worker_list(), many=True).data)


class WorkerActionView(APIView):
    """Admins drain a worker (it finishes its jobs and takes no more), resume it, or shut it down warmly."""

    permission_classes = [IsSiteAdmin]
    action_name = "drain"
    actions = {"drain": fleet_services.worker_drain, "resume": fleet_services.worker_resume,
               "shutdown": fleet_services.worker_shutdown}

    @extend_schema(request=None, responses=s.WorkerOutput)
    def post(self, request, worker_id: int):
        worker = get_object_or_404(Worker, id=worker_id)
        return Response(s.WorkerOutput(self.actions[self.action_name](worker=worker)).data)


class WorkerGpuHistoryView(APIView):
    """Admins: one worker's GPU utilisation (mean, max) and memory used over time, per GPU, one point per
    minute (or per bucket of minutes over long spans), from the last ``hours`` (1 to 24 × FLEET_HISTORY_DAYS)."""

    permission_classes = [IsSiteAdmin]

    @extend_schema(parameters=[OpenApiParameter("hours", int, description="how far back, 1 to 168 (default 24)")],
                   responses=OpenApiTypes.OBJECT)
    def get(self, request, worker_id: int):
        from django.conf import settings

        from trainer_app.selectors.fleet import worker_gpu_history

        worker = get_object_or_404(Worker, id=worker_id)
        raw = request.query_params.get("hours", "24")
        limit = settings.FLEET_HISTORY_DAYS * 24
        try:
            hours = int(raw)
        except ValueError:
            hours = 0
        if not 1 <= hours <= limit:
            raise ValidationError({"hours": [f"hours must be a whole number from 1 to {limit} (the history kept), "
                                             f"not {raw!r}."]})
        return Response(worker_gpu_history(worker=worker, hours=hours))


class QueueListView(APIView):
    """Everyone sees the queues (to choose one at launch), with how many runs wait and run on each; only
    admins create them."""

    @extend_schema(responses=s.QueueOutput(many=True))
    def get(self, request):
        return Response(s.QueueOutput(queue_list(), many=True).data)

    @extend_schema(request=s.QueueInput, responses={201: s.QueueOutput})
    def post(self, request):
        if not selectors.user_is_site_admin(request.user):
            raise PermissionDenied("Only admins can create queues.")
        data = s.QueueInput(data=request.data)
        data.is_valid(raise_exception=True)
        queue = queue_services.queue_create(**data.validated_data)
        return Response(s.QueueOutput(queue).data, status=status.HTTP_201_CREATED)


class QueueDetailView(APIView):
    """One queue; admins change it (PATCH) or delete it (only when no unfinished run uses it)."""

    def _queue(self, request, queue_id: int, *, change: bool) -> Queue:
        if change and not selectors.user_is_site_admin(request.user):
            raise PermissionDenied("Only admins can change or delete queues.")
        return get_object_or_404(queue_list(), id=queue_id)

    @extend_schema(responses=s.QueueOutput)
    def get(self, request, queue_id: int):
        return Response(s.QueueOutput(self._queue(request, queue_id, change=False)).data)

    @extend_schema(request=s.QueueUpdateInput, responses=s.QueueOutput)
    def patch(self, request, queue_id: int):
        queue = self._queue(request, queue_id, change=True)
        data = s.QueueUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        queue_services.queue_update(queue=queue, **data.validated_data)
        return Response(s.QueueOutput(queue_list().get(pk=queue.pk)).data)

    @extend_schema(request=None, responses={204: None, 400: OpenApiTypes.OBJECT})
    def delete(self, request, queue_id: int):
        queue_services.queue_delete(queue=self._queue(request, queue_id, change=True))
        return Response(status=status.HTTP_204_NO_CONTENT)


class QueuePauseView(APIView):
    permission_classes = [IsSiteAdmin]
    paused = True

    @extend_schema(request=None, responses=s.QueueOutput)
    def post(self, request, queue_id: int):
        queue = get_object_or_404(Queue, id=queue_id)
        queue_services.queue_set_paused(queue=queue, paused=self.paused)
        return Response(s.QueueOutput(queue_list().get(pk=queue.pk)).data)


class QueueResumeView(QueuePauseView):
    paused = False
