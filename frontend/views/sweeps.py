"""Sweep pages: the project's sweeps, the new-sweep form and a sweep's live page.

The form creates the sweep through POST /api/sweeps/ from the browser (sweep_form.js), which judges
everything; the sweep page follows GET /api/sweeps/{id}/ and its charts (sweep_live.js). These views only
render what the browser starts from, and every sweep they show comes through the sweeps selector.
"""
from __future__ import annotations

import dataclasses
import json

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render

from frontend.views.datasets import _current_project
from frontend.views.models import dataset_facts, model_concepts, preset_choices, ready_datasets
from kg_app import ontology
from trainer_app import selectors, studies
from trainer_app.models import SWEEP_ACTIVE, SWEEP_FINAL, Queue
from trainer_app.selectors.sweeps import sweep_list as sweep_selector
from trainer_app.services import sweeps as sweep_rules

# Each sampler's and pruner's explanation is its concept's (kg_app/explanations.py, editable by admins): the
# options' titles and the help line under each select (sweep_form.js) come from it.
SAMPLER_CONCEPTS = {name: ontology.SAMPLER_CONCEPTS[name] for name in studies.SAMPLERS}
PRUNER_CONCEPTS = {name: ontology.PRUNER_OPTION_CONCEPTS[name] for name in studies.PRUNERS}
PARAMETER_HELP = {
    "float": "a real number between low and high; log samples evenly in orders of magnitude (e.g. a learning rate)",
    "int": "a whole number between low and high, optionally every step",
    "categorical": "one of the listed choices",
}


# --- the list -----------------------------------------------------------------------------------------

def sweep_progress(sweep) -> dict:
    """Done (complete, pruned or failed, retries not counted twice) out of the budget, from the cached counts."""
    counts = sweep.counts or {}
    done = sum(counts.get(state, 0) for state in ("complete", "pruned", "fail"))
    return {"done": min(done, sweep.n_trials), "total": sweep.n_trials, "running": counts.get("running", 0),
            "percent": round(100 * min(done, sweep.n_trials) / sweep.n_trials) if sweep.n_trials else 0}


def _list_rows(sweeps) -> list[dict]:
    return [{"sweep": sweep, "progress": sweep_progress(sweep), "best": (sweep.best or {}).get("value"),
             "pareto": len((sweep.best or {}).get("pareto") or []),
             "objective": sweep.objectives[0] if sweep.objectives else {}} for sweep in sweeps]


@login_required
def sweep_list(request):
    project, projects = _current_project(request)
    sweeps = list(sweep_selector(user=request.user, project_id=project.pk)[:100]) if project else []
    active = any(sweep.status in SWEEP_ACTIVE for sweep in sweeps)
    template = "frontend/sweeps/_table.html" if request.htmx else "frontend/sweeps/list.html"
    return render(request, template, {"project": project, "projects": projects, "rows": _list_rows(sweeps),
                                      "active": active})


# --- the form ----------------------------------------------------------------------------------------

def parameter_names() -> list[dict]:
    """The names a search space may use besides model.<option>: training settings, schedule.*, augmentation.*."""
    from trainer_app.engine.config import AugmentationSpec, ScheduleSpec

    names = [{"name": name, "group": "training"} for name in sweep_rules.TRAINING_PARAMETERS]
    names += [{"name": f"schedule.{field.name}", "group": "schedule"} for field in dataclasses.fields(ScheduleSpec)]
    names += [{"name": f"augmentation.{field.name}", "group": "augmentation (images)"}
              for field in dataclasses.fields(AugmentationSpec)]
    return names


def form_names(designs: list[dict], presets: list[dict]) -> list[str]:
    """Every parameter name the form offers: training settings and the designs' and presets' model.* options."""
    names = [entry["name"] for entry in parameter_names()]
    for choice in designs + presets:
        names += choice["options"]
    return names


def parameter_concepts(names: list[str]) -> dict[str, str]:
    """The concept that explains each search-space parameter (lr → learning-rate, model.dropout → dropout)."""
    return {name: concept for name in names if (concept := ontology.setting_concept(name))}


def design_options(design) -> list[str]:
    """The model.<option> names a preset design can search (none for a list of layers)."""
    from trainer_app.engine.design import PRESET_OPTIONS

    preset = (design.spec or {}).get("preset")
    if preset is None:
        return []
    options = set(PRESET_OPTIONS.get(preset, {}))
    if preset in sweep_rules.DESIGN_SPACE_PRESETS:
        options |= {"depth", "width"}
    return [f"{studies.MODEL_PREFIX}{option}" for option in sorted(options)]


def _designs(user, project) -> tuple[list[dict], dict[str, int]]:
    """The project's designs for the form, and for each preset the design that is just that preset (reused
    when the user picks the preset, instead of a new design)."""
    designs, preset_designs = [], {}
    for design in selectors.design_list(user=user, project_id=project.pk)[:300]:
        preset = (design.spec or {}).get("preset")
        designs.append({"id": design.pk, "label": f"{design.name} v{design.version} · {design.family}",
                        "preset": preset or "", "options": design_options(design)})
        if preset and design.name == preset and design.spec == {"preset": preset}:
            preset_designs.setdefault(preset, design.pk)  # the newest version: design_list orders -version
    return designs, preset_designs


def _metrics() -> dict[str, list[dict]]:
    """Objective metrics per task: per-epoch ones can be pruned on, the others come at the end."""
    result = {}
    for task, epoch_metrics in sweep_rules.EPOCH_METRICS.items():
        result[task] = ([{"name": name, "per_epoch": True} for name in epoch_metrics]
                        + [{"name": name, "per_epoch": False}
                           for name in sweep_rules.FINAL_METRICS[task] + sweep_rules.MODEL_METRICS])
    return result


@login_required
def sweep_new(request):
    project, projects = _current_project(request)
    if project is None:
        return render(request, "frontend/sweeps/new.html", {"project": None})
    datasets = list(ready_datasets(request.user, project))
    designs, preset_designs = _designs(request.user, project)
    from trainer_app.engine.design import PRESET_OPTIONS

    presets = [{"value": f"preset:{preset['name']}", "label": preset["label"], "preset": preset["name"],
                "design": preset_designs.get(preset["name"]),
                "options": [f"{studies.MODEL_PREFIX}{option}" for option in sorted(
                    set(PRESET_OPTIONS.get(preset["name"], {}))
                    | ({"depth", "width"} if preset["name"] in sweep_rules.DESIGN_SPACE_PRESETS else set()))]}
               for preset in preset_choices()]
    wanted_dataset = request.GET.get("dataset", "")
    form = {
        "project": project.pk, "datasets": [dataset_facts(dataset) for dataset in datasets],
        "designs": designs, "presets": presets, "metrics": _metrics(), "parameter_names": parameter_names(),
        "samplers": studies.SAMPLERS, "pruners": studies.PRUNERS,
        "dataset": int(wanted_dataset) if wanted_dataset.isdigit() else None,
        "sampler_concepts": SAMPLER_CONCEPTS, "pruner_concepts": PRUNER_CONCEPTS,
        "parameter_concepts": parameter_concepts(form_names(designs, presets)),
    }
    queues = [(queue.name, f"{queue.name}{' (paused)' if queue.paused else ''}") for queue in
              Queue.objects.order_by("priority", "name")]
    return render(request, "frontend/sweeps/new.html", {
        "project": project, "projects": projects, "datasets": datasets, "designs": designs, "presets": presets,
        "queues": queues or [("cpu", "cpu")], "form": form,
        "samplers": list(SAMPLER_CONCEPTS.items()), "pruners": list(PRUNER_CONCEPTS.items()),
        "model_concepts": json.dumps(model_concepts(request.user, project)),
        "optimizer_concepts": json.dumps(ontology.OPTIMIZER_CONCEPTS),
        "parameter_help": PARAMETER_HELP, "optimizers": ("adam", "adamw", "sgd", "rmsprop", "adagrad"),
    })


# --- a sweep ------------------------------------------------------------------------------------------

@login_required
def sweep_detail(request, sweep_id: int):
    sweep = get_object_or_404(sweep_selector(user=request.user).select_related("project", "created_by"), id=sweep_id)
    page = {
        "id": sweep.pk, "status": sweep.status, "final": [str(status) for status in SWEEP_FINAL],
        "n_trials": sweep.n_trials, "parallelism": sweep.parallelism,
        "objectives": sweep.objectives, "multi_objective": sweep.multi_objective,
        "epochs": sweep.config.get("epochs"), "search_space": list(sweep.search_space),
    }
    return render(request, "frontend/sweeps/detail.html", {
        "sweep": sweep, "page": page, "progress": sweep_progress(sweep), "created": request.GET.get("created") == "1",
        "final": sweep.status in SWEEP_FINAL, "space_rows": sorted(sweep.search_space.items()),
        "config_rows": sorted((key, value) for key, value in sweep.config.items() if not isinstance(value, dict)),
        "default_promote_epochs": int(sweep.config.get("epochs") or 10) * 2,
        "charts": [("history", "History"), ("importances", "Importances"), ("parallel", "Parallel coordinates"),
                   ("contour", "Contour"), ("slice", "Slice"), ("edf", "EDF"), ("timeline", "Timeline")]
                  + ([("pareto", "Pareto front")] if sweep.multi_objective else []),
    })
