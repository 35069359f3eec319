"""Uploaded weights (.safetensors) to fine-tune from."""
from __future__ import annotations

import os
import uuid

from django.core.exceptions import PermissionDenied, ValidationError

from trainer_app.models import Project, WeightsFile
from trainer_app.selectors import user_project_role
from trainer_app.specs import media_path


def weights_upload(*, project: Project, name: str, file, created_by) -> WeightsFile:
    """Keep a safetensors file under a generated name; a pickle or anything else is refused, unread."""
    from trainer_app.services.datasets import check_upload_size
    from trainer_app.weights import WeightsProblem, file_digest, header_shapes

    if user_project_role(created_by, project) is None:
        raise PermissionDenied("You are not a member of this project.")
    check_upload_size(file.size)
    relative = f"weights/{uuid.uuid4().hex}.safetensors"
    target = media_path(relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as handle:
        for chunk in file.chunks():
            handle.write(chunk)
    try:
        shapes = header_shapes(target)
    except WeightsProblem as error:
        target.unlink(missing_ok=True)
        raise ValidationError({"file": str(error)}) from None
    display = (name or os.path.basename(file.name or "weights")).strip()[:120]
    return WeightsFile.objects.create(project=project, name=display, path=relative, size_bytes=file.size,
                                      sha256=file_digest(target), tensors=len(shapes), created_by=created_by)
