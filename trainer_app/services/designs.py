"""Model designs: named, versioned, checked against a dataset's shapes by the engine's validator."""
from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from trainer_app.models import Dataset, ModelDesign, Project
from trainer_app.selectors import user_project_role


def _check_spec_shape(spec) -> dict:
    from trainer_app.engine.design import LAYER_PARAMETERS, PRESETS

    if not isinstance(spec, dict) or not ({"preset", "layers"} & set(spec)):
        raise ValidationError({"spec": 'A design is {"preset": "small_cnn"} or {"layers": [{"type": "Conv2d", …}, …]}.'})
    if "preset" in spec and spec["preset"] not in PRESETS:
        raise ValidationError({"spec": f"Unknown preset {spec['preset']!r}: choose one of {', '.join(PRESETS)}."})
    if "layers" in spec:
        layers = spec["layers"]
        if not isinstance(layers, list) or not layers:
            raise ValidationError({"spec": "layers must be a non-empty list of {\"type\": …} objects."})
        known = {name.lower() for name in LAYER_PARAMETERS}
        for index, layer in enumerate(layers, start=1):
            kind = layer.get("type") if isinstance(layer, dict) else None
            if not isinstance(kind, str):
                raise ValidationError({"spec": f"layer {index} has no type: give each layer a \"type\"."})
            if kind.lower() not in known and kind.lower() not in {"selfattentionblock", "attention", "residual",
                                                                    "conv", "dense"}:
                raise ValidationError({"spec": f"layer {index} has unknown type {kind!r}: use one of "
                                               f"{', '.join(LAYER_PARAMETERS)}."})
    return spec


@transaction.atomic
def design_create(*, project: Project, name: str, spec: dict, created_by, description: str = "") -> ModelDesign:
    """Save a design; the same name again makes the next version."""
    if user_project_role(created_by, project) is None:
        raise PermissionDenied("You are not a member of this project.")
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the design a name, e.g. 'digits-cnn'."})
    spec = _check_spec_shape(spec)
    previous = ModelDesign.objects.filter(project=project, name=name).order_by("-version").first()
    return ModelDesign.objects.create(project=project, name=name, spec=spec, description=description,
                                      created_by=created_by, previous=previous,
                                      version=(previous.version + 1) if previous else 1)


def design_validate(*, spec: dict, dataset: Dataset) -> dict:
    """The engine's answer for this design on this dataset: shapes, parameters, MACs, or the fix."""
    from trainer_app.engine.design import validate_design

    try:
        _check_spec_shape(spec)
    except ValidationError as error:
        message = error.message_dict["spec"][0]
        return {"ok": False, "error": message, "error_layer": None, "layers": [], "parameters": 0, "macs": 0,
                "warnings": []}
    classes = dataset.num_classes if dataset.task == "classification" else 0
    return validate_design(spec, dataset.input_shape, classes or 0)
