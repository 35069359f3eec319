"""The launch form's helpers: start a learning-rate finder with the form's settings as they are. The page
follows it through GET /api/runs/{id}/lr-finder/ and can take its suggestion (lr_finder.js)."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import JsonResponse
from django.views.decorators.http import require_POST

from frontend.views.datasets import _current_project
from frontend.views.launch import LaunchForm, _design_for, add_service_error, config_from_form
from frontend.views.models import ready_datasets
from trainer_app.services.lr_finder import lr_finder_create


@login_required
@require_POST
def run_lr_finder(request):
    """POST the launch form here: 201 {"run"} for a queued finder, or 400 {"errors": {field: [messages]}}
    (the same checks as a launch: a model that does not fit the data is refused with the designer's message)."""
    project, _projects = _current_project(request)
    if project is None:
        return JsonResponse({"errors": {"__all__": ["Join a project first."]}}, status=400)
    form = LaunchForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        dataset = ready_datasets(request.user, project).filter(id=data["dataset"]).first()
        if dataset is None:
            form.add_error("dataset", "Choose a ready dataset of this project.")
        else:
            try:
                with transaction.atomic():
                    design = _design_for(data["model"], user=request.user, project=project)
                    if design is None:
                        raise ValidationError({"model": "Choose one of the project's designs or a preset."})
                    run = lr_finder_create(
                        project=project, dataset=dataset, design=design, created_by=request.user,
                        config=config_from_form(data, modality=dataset.modality), queue_name=data["queue"],
                        resources={"nproc_per_node": data["nproc_per_node"], "gpus_per_node": data["gpus_per_node"]})
                return JsonResponse({"run": run.pk, "design": design.pk}, status=201)
            except ValidationError as error:
                add_service_error(form, error)
            except PermissionDenied as error:
                form.add_error(None, str(error))
    return JsonResponse({"errors": {field: [str(message) for message in messages]
                                    for field, messages in form.errors.items()}}, status=400)
