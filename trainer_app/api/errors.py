"""One place that turns the services' Django errors into DRF answers, so API views need no try/except:
a ValidationError becomes a 400 with its field messages, a PermissionDenied a 403 that keeps its
message (DRF's own handler would replace it with a generic one)."""
from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def error_detail(error: DjangoValidationError) -> dict:
    """A Django ValidationError in DRF's shape: {"field": ["…"]} or {"detail": ["…"]}."""
    return error.message_dict if hasattr(error, "error_dict") else {"detail": error.messages}


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(error_detail(exc))
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    return drf_exception_handler(exc, context)


def conflict(error: DjangoValidationError, **extra) -> Response:
    """409: the request is fine but the object's state refuses it (delete a locked dataset, cancel a
    finished run)."""
    return Response({**error_detail(error), **extra}, status=status.HTTP_409_CONFLICT)
