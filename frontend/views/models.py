"""Model design pages: the project's designs, the designer (presets or a live layer builder), a design's detail.

The designer checks shapes through POST /api/models/validate/ and saves through POST /api/models/ from
the browser (designer.js); these views only render what it starts from.
"""
from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render

from frontend.views.datasets import _current_project
from kg_app.ontology import LAYER_CONCEPTS, PRESET_CONCEPTS
from trainer_app import selectors
from trainer_app.models import DatasetStatus, ModelDesign

PRESET_LABELS = {
    "mlp": "MLP: fully connected layers (tables, small images)",
    "small_cnn": "Small CNN: PyTorch's CIFAR-10 tutorial network",
    "resnet18": "ResNet-18 (torchvision, adapted to the input)",
    "resnet34": "ResNet-34 (torchvision, adapted to the input)",
    "resnet50": "ResNet-50 (torchvision, adapted to the input)",
    "vit_tiny": "ViT-Tiny: a small Vision Transformer (images)",
    "tab_transformer": "Tab Transformer: attention over feature tokens (tables)",
}


def layer_catalogue() -> dict[str, list[dict]]:
    """Every layer type of the builder with its parameters: [{"name", "required", "default"}]."""
    from trainer_app.engine.design import LAYER_PARAMETERS

    catalogue = {}
    for kind, parameters in LAYER_PARAMETERS.items():
        entries = []
        for name, default in parameters.items():
            required = default is not None and not isinstance(default, (bool, int, float, str, list))
            entries.append({"name": name, "required": required, "default": None if required else default})
        catalogue[kind] = entries
    return catalogue


def preset_choices() -> list[dict]:
    from trainer_app.engine.design import PRESETS

    return [{"name": name, "label": PRESET_LABELS.get(name, name)} for name in PRESETS]


def model_concepts(user, project) -> dict[str, str]:
    """The concept that explains each option of a model select ('preset:<name>', 'design:<id>'): its
    architecture family."""
    from kg_app.ontology import FAMILY_CONCEPTS
    from trainer_app.engine.design import PRESETS

    concepts = {f"preset:{name}": PRESET_CONCEPTS.get(name, "") for name in PRESETS}
    for design in selectors.design_list(user=user, project_id=project.pk).only("id", "spec")[:300]:
        concepts[f"design:{design.pk}"] = FAMILY_CONCEPTS.get(design.family, "")
    return concepts


def dataset_facts(dataset) -> dict:
    """What the designer and the launch form need to know about a dataset, for the browser."""
    return {"id": dataset.pk, "label": f"{dataset.name} v{dataset.version}", "input_shape": dataset.input_shape,
            "num_classes": dataset.num_classes or 0, "task": dataset.task, "modality": dataset.modality}


def ready_datasets(user, project):
    return selectors.dataset_list(user=user, project_id=project.pk).filter(status=DatasetStatus.READY)


def design_fit(design: ModelDesign, datasets: list) -> dict | None:
    """Parameters and MACs of a layer design on the first of `datasets` it fits (pure arithmetic, no torch).

    Presets are left out: describing one builds it with torch, too slow for a list."""
    from trainer_app.engine.design import validate_design

    if "layers" not in design.spec:
        return None
    for dataset in datasets:
        classes = dataset.num_classes if dataset.task == "classification" else 0
        answer = validate_design(design.spec, dataset.input_shape, classes or 0)
        if answer["ok"]:
            layers = [{**layer, "parameters_text": f"{layer['parameters']:,}", "macs_text": f"{layer['macs']:,}"}
                      for layer in answer["layers"]]
            return {"parameters": answer["parameters"], "macs": answer["macs"], "dataset": dataset, "layers": layers,
                    "parameters_text": f"{answer['parameters']:,}", "macs_text": f"{answer['macs']:,}"}
    return None


def _designs_with_fit(designs, datasets) -> list[dict]:
    return [{"design": design, "fit": design_fit(design, datasets), "runs": design.run_count} for design in designs]


@login_required
def model_list(request):
    from django.db.models import Count

    project, projects = _current_project(request)
    context = {"project": project, "projects": projects}
    if project is not None:
        datasets = list(ready_datasets(request.user, project))
        designs = (selectors.design_list(user=request.user, project_id=project.pk)
                   .annotate(run_count=Count("runs"))[:200])
        start_from = None
        wanted = request.GET.get("from")
        if wanted and wanted.isdigit():
            start_from = selectors.design_list(user=request.user, project_id=project.pk).filter(id=wanted).first()
        context.update({
            "datasets": datasets, "rows": _designs_with_fit(designs, datasets),
            "designer": {"project": project.pk, "datasets": [dataset_facts(d) for d in datasets],
                         "layers": layer_catalogue(), "presets": preset_choices(),
                         "start": {"name": start_from.name, "spec": start_from.spec} if start_from else None},
        })
    context.update(preset_concepts=json.dumps(PRESET_CONCEPTS), layer_concepts=json.dumps(LAYER_CONCEPTS))
    return render(request, "frontend/models/list.html", context)


@login_required
def model_detail(request, design_id: int):
    design = get_object_or_404(selectors.design_list(user=request.user).select_related("project", "created_by"),
                               id=design_id)
    runs = list(design.runs.select_related("dataset").order_by("-created_at")[:50])
    datasets = list(ready_datasets(request.user, design.project))
    versions = ModelDesign.objects.filter(project=design.project, name=design.name).order_by("-version")
    return render(request, "frontend/models/detail.html", {
        "design": design, "versions": versions, "runs": runs,
        "fit": design_fit(design, [run.dataset for run in runs[:1]] + datasets),
        "preset_label": PRESET_LABELS.get(design.spec.get("preset", ""), ""),
        "spec_json": json.dumps(design.spec, indent=2),
    })
