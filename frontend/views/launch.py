"""The launch form: three clicks with the defaults, every option under Advanced, clone and edit.

Launching calls trainer_app.services.runs.run_create, which checks everything and queues the run; its
ValidationError is shown next to the field it names.
"""
from __future__ import annotations

import dataclasses
import json

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count
from django.shortcuts import redirect, render

from frontend.views.datasets import _current_project
from frontend.views.models import dataset_facts, model_concepts, preset_choices, ready_datasets
from kg_app.ontology import OPTIMIZER_CONCEPTS, SCHEDULE_CONCEPTS, setting_concept
from trainer_app import selectors
from trainer_app.models import Queue
from trainer_app.services import designs as design_services
from trainer_app.services import runs as run_services



# --- the launch form ------------------------------------------------------------------------------

class LaunchForm(forms.Form):
    """Types only: the values themselves are judged by run_create and the engine, whose messages say the fix."""

    name = forms.CharField(required=False, max_length=200)
    dataset = forms.IntegerField()
    model = forms.CharField(max_length=140)
    optimizer = forms.ChoiceField(choices=[(name, name) for name in ("adam", "adamw", "sgd", "rmsprop", "adagrad")])
    lr = forms.FloatField(label="Learning rate")
    momentum = forms.FloatField()
    nesterov = forms.BooleanField(required=False)
    weight_decay = forms.FloatField(label="Weight decay")
    batch_size = forms.IntegerField(label="Batch size")
    epochs = forms.IntegerField()
    schedule = forms.ChoiceField(choices=[(name, name) for name in ("none", "step", "cosine", "onecycle")])
    step_size = forms.IntegerField(label="Step size (epochs)")
    gamma = forms.FloatField()
    warmup_epochs = forms.FloatField(label="Warm-up epochs")
    grad_clip = forms.FloatField(required=False, label="Gradient clipping")
    label_smoothing = forms.FloatField(label="Label smoothing")
    amp = forms.ChoiceField(choices=[(name, name) for name in ("none", "bf16", "fp16")], label="Mixed precision")
    early_stopping = forms.BooleanField(required=False)
    es_metric = forms.ChoiceField(choices=[(name, name) for name in
                                           ("val_loss", "val_accuracy", "val_mae", "val_rmse", "val_r2")],
                                  label="Early-stopping metric")
    es_mode = forms.ChoiceField(choices=[("auto", "auto"), ("min", "min"), ("max", "max")], label="Mode")
    es_patience = forms.IntegerField(label="Patience (epochs)")
    es_min_delta = forms.FloatField(label="Minimum change")
    seed = forms.IntegerField()
    deterministic = forms.BooleanField(required=False)
    max_steps = forms.IntegerField(required=False, label="Maximum steps")
    random_crop = forms.IntegerField(label="Random crop padding (px)")
    hflip = forms.BooleanField(required=False, label="Horizontal flip")
    rotation = forms.FloatField(label="Rotation (±degrees)")
    color_jitter = forms.FloatField(label="Colour jitter")
    nproc_per_node = forms.IntegerField(label="Processes per node")
    gpus_per_node = forms.IntegerField(label="GPUs per node")
    nnodes = forms.IntegerField(required=False, label="Nodes", min_value=1)
    queue = forms.CharField(max_length=64)
    fine_tune_from = forms.IntegerField(required=False, label="Fine-tune from")
    freeze = forms.CharField(required=False, max_length=1000, label="Layers to freeze")


# Engine field paths (SpecError names them) -> the form field that sets them.
CONFIG_FIELDS = {
    **{f"training.{name}": name for name in ("optimizer", "lr", "momentum", "nesterov", "weight_decay", "batch_size",
                                              "epochs", "grad_clip", "label_smoothing", "amp", "seed",
                                              "deterministic", "max_steps")},
    "training.schedule.type": "schedule", "training.schedule.step_size": "step_size",
    "training.schedule.gamma": "gamma", "training.schedule.warmup_epochs": "warmup_epochs",
    "training.early_stopping.metric": "es_metric", "training.early_stopping.mode": "es_mode",
    "training.early_stopping.patience": "es_patience", "training.early_stopping.min_delta": "es_min_delta",
    "data.augmentation.random_crop": "random_crop", "data.augmentation.rotation": "rotation",
    "data.augmentation.color_jitter": "color_jitter", "data.augmentation": "random_crop",
    "init.freeze": "freeze",
}
SERVICE_FIELDS = {"dataset": "dataset", "model": "model", "queue": "queue", "fine_tune_from": "fine_tune_from",
                  "resources": "nproc_per_node"}


def default_values() -> dict:
    """The form's starting values: the engine's own defaults."""
    from trainer_app.engine.config import AugmentationSpec, EarlyStoppingSpec, TrainingSpec

    return values_from_config({**dataclasses.asdict(TrainingSpec()),
                               "augmentation": dataclasses.asdict(AugmentationSpec()),
                               "early_stopping_defaults": dataclasses.asdict(EarlyStoppingSpec())})


def values_from_config(config: dict) -> dict:
    """Form values from a run's normalised config (clone and edit) or the defaults."""
    schedule = config.get("schedule") or {}
    stopping = config.get("early_stopping") or {}
    stopping_defaults = config.get("early_stopping_defaults") or {"metric": "val_loss", "patience": 3,
                                                                  "min_delta": 0.0}
    augmentation = config.get("augmentation") or {}
    values = {key: config.get(key) for key in ("optimizer", "lr", "momentum", "nesterov", "weight_decay", "batch_size",
                                               "epochs", "grad_clip", "label_smoothing", "amp", "seed",
                                               "deterministic", "max_steps")}
    values.update(schedule=schedule.get("type", "none"), step_size=schedule.get("step_size", 1),
                  gamma=schedule.get("gamma", 0.1), warmup_epochs=schedule.get("warmup_epochs", 0.0),
                  early_stopping=bool(stopping),
                  es_metric=stopping.get("metric") or stopping_defaults["metric"],
                  es_mode=stopping.get("mode") or "auto",
                  es_patience=stopping.get("patience") or stopping_defaults["patience"],
                  es_min_delta=stopping.get("min_delta", stopping_defaults["min_delta"]),
                  random_crop=augmentation.get("random_crop", 0), hflip=augmentation.get("hflip", False),
                  rotation=augmentation.get("rotation", 0.0), color_jitter=augmentation.get("color_jitter", 0.0))
    return values


def config_from_form(data: dict, *, modality: str) -> dict:
    """The run's config as run_create takes it. Augmentation goes to image datasets only (the form hides it
    for tables, so a value left there must not refuse the run)."""
    config = {key: data[key] for key in ("optimizer", "lr", "momentum", "weight_decay", "batch_size", "epochs",
                                         "grad_clip", "label_smoothing", "amp", "seed", "deterministic", "max_steps")}
    config["nesterov"] = bool(data["nesterov"]) and data["optimizer"] == "sgd"
    config["schedule"] = {"type": data["schedule"], "step_size": data["step_size"], "gamma": data["gamma"],
                          "warmup_epochs": data["warmup_epochs"]}
    config["early_stopping"] = {"metric": data["es_metric"], "mode": None if data["es_mode"] == "auto" else
                                data["es_mode"], "patience": data["es_patience"],
                                "min_delta": data["es_min_delta"]} if data["early_stopping"] else None
    if modality == "image":
        config["augmentation"] = {"random_crop": data["random_crop"], "hflip": bool(data["hflip"]),
                                  "rotation": data["rotation"], "color_jitter": data["color_jitter"]}
    return config


def add_service_error(form: LaunchForm, error: ValidationError) -> None:
    """Put each message of run_create's ValidationError next to the field it is about."""
    if not hasattr(error, "error_dict"):
        for message in error.messages:
            form.add_error(None, message)
        return
    for key, messages in error.message_dict.items():
        for message in messages:
            field = SERVICE_FIELDS.get(key)
            if key == "resources" and ("nnodes" in message or " nodes need " in message):
                field = "nnodes"
            if key == "config":
                path, _, rest = message.partition(" ")
                field = CONFIG_FIELDS.get(path)
                if field is not None:
                    message = f"{form.fields[field].label or field.replace('_', ' ').capitalize()} {rest}"
            form.add_error(field, message)


# The form's layout: the essentials on top, every other option under "Advanced", grouped. `when` shows a
# field only while another field has one of the given values (launch.js).
ESSENTIALS = ["epochs", "batch_size", "lr", "optimizer"]
ADVANCED = [
    ("Optimizer", ["momentum", "nesterov", "weight_decay"]),
    ("Learning-rate schedule", ["schedule", "step_size", "gamma", "warmup_epochs"]),
    ("Regularisation", ["grad_clip", "label_smoothing"]),
    ("Early stopping", ["early_stopping", "es_metric", "es_mode", "es_patience", "es_min_delta"]),
    ("Precision and reproducibility", ["amp", "seed", "deterministic", "max_steps"]),
    ("Augmentation", ["random_crop", "hflip", "rotation", "color_jitter"]),
    ("Resources", ["nproc_per_node", "gpus_per_node", "nnodes", "queue"]),
    ("Fine-tuning", ["fine_tune_from", "freeze"]),
]
HELP = {
    "batch_size": "the global batch, split evenly across the processes",
    "lr": "the peak rate for onecycle",
    "momentum": "sgd and rmsprop", "nesterov": "sgd only", "weight_decay": "decoupled for adamw",
    "warmup_epochs": "linear warm-up from 0 (onecycle warms up on its own)",
    "grad_clip": "clip the gradient norm; empty = no clipping", "label_smoothing": "classification, from 0 to 1",
    "amp": "bf16 or fp16 on GPU; CPU runs train in fp32", "seed": "initialisation, data order, augmentation",
    "deterministic": "slower on GPU; a resumed run ends with the same weights",
    "max_steps": "stop after this many optimizer steps; empty = no limit",
    "random_crop": "pad by this many pixels, crop back at random; 0 = off", "rotation": "0 = off",
    "color_jitter": "brightness/contrast factor range, below 1; 0 = off",
    "nproc_per_node": "DDP processes on one worker", "gpus_per_node": "0 = CPU",
    "nnodes": "workers the run spans, each running the processes above; 2 or more start together and need "
              "storage shared by the workers",
    "fine_tune_from": "start from the best checkpoint of an earlier run; the head is replaced for the new classes",
    "freeze": "comma-separated prefixes, e.g. layer1, layer2 (builder designs name their layers layer1…layerN)",
    "es_mode": "auto = max for accuracy and R², min otherwise",
}
WHEN = {
    "momentum": "optimizer=sgd,rmsprop", "nesterov": "optimizer=sgd", "step_size": "schedule=step",
    "gamma": "schedule=step", "warmup_epochs": "schedule=none,step,cosine",
    **{name: "early_stopping=on" for name in ("es_metric", "es_mode", "es_patience", "es_min_delta")},
}


# Selects whose every option is a concept of its own: explain.js shows the chosen one's explanation under the
# select and gives each option its explanation as a title.
OPTION_CONCEPTS = {"optimizer": OPTIMIZER_CONCEPTS, "schedule": SCHEDULE_CONCEPTS}


def field_rows(names: list[str], values: dict, errors, choices: dict) -> list[dict]:
    """What the template needs to draw each field: kind, value, choices, help, errors, and the concept that
    explains it (with, for some selects, each option's concept)."""
    rows = []
    for name in names:
        field = LaunchForm.base_fields[name]
        value = values.get(name)
        if isinstance(field, forms.BooleanField):
            kind = "checkbox"
        elif name in choices or isinstance(field, forms.ChoiceField):
            kind = "select"
        elif isinstance(field, (forms.IntegerField, forms.FloatField)):
            kind = "number"
        else:
            kind = "text"
        options = choices.get(name) or getattr(field, "choices", None) or []
        rows.append({"name": name, "label": field.label or name.replace("_", " ").capitalize(), "kind": kind,
                     "value": "" if value is None else str(value), "checked": value in (True, "on", "true"),
                     "choices": [(str(key), label) for key, label in options],
                     "step": "1" if isinstance(field, forms.IntegerField) else "any",
                     "help": HELP.get(name, ""), "when": WHEN.get(name, ""), "errors": errors.get(name, []),
                     "concept": setting_concept(name) or "",
                     "option_concepts": json.dumps(OPTION_CONCEPTS[name]) if name in OPTION_CONCEPTS else ""})
    return rows


def _design_for(choice: str, *, user, project):
    """A design of the project for 'design:<id>', or for 'preset:<name>' the design named after the preset with
    spec {"preset": name}, reused if it exists, else created."""
    from trainer_app.engine.design import PRESETS

    kind, _, value = choice.partition(":")
    designs = selectors.design_list(user=user, project_id=project.pk)
    if kind == "design" and value.isdigit():
        return designs.filter(id=int(value)).first()
    if kind == "preset" and value in PRESETS:
        latest = designs.filter(name=value).order_by("-version").first()
        if latest is not None and latest.spec == {"preset": value}:
            return latest
        return design_services.design_create(project=project, name=value, spec={"preset": value}, created_by=user,
                                             description=f"The {value} preset.")
    return None


def _launch(request, form: LaunchForm, project):
    """Create the run from a bound, type-valid form; None (with errors on the form) when it is refused."""
    data = form.cleaned_data
    dataset = ready_datasets(request.user, project).filter(id=data["dataset"]).first()
    if dataset is None:
        form.add_error("dataset", "Choose a ready dataset of this project.")
        return None
    parent = None
    if data["fine_tune_from"] is not None:
        parent = selectors.run_list(user=request.user, project_id=project.pk).filter(id=data["fine_tune_from"]).first()
        if parent is None:
            form.add_error("fine_tune_from", "Choose an earlier run of this project.")
            return None
    freeze = [name.strip() for name in (data["freeze"] or "").split(",") if name.strip()]
    try:
        with transaction.atomic():  # a preset's design is kept only if the run is launched
            design = _design_for(data["model"], user=request.user, project=project)
            if design is None:
                raise ValidationError({"model": "Choose one of the project's designs or a preset."})
            return run_services.run_create(
                project=project, dataset=dataset, design=design, created_by=request.user, name=data["name"],
                config=config_from_form(data, modality=dataset.modality), queue_name=data["queue"],
                resources={"nproc_per_node": data["nproc_per_node"], "gpus_per_node": data["gpus_per_node"],
                           "nnodes": data.get("nnodes") or 1},
                fine_tune_from=parent, freeze=freeze)
    except ValidationError as error:
        add_service_error(form, error)
    except PermissionDenied as error:
        form.add_error(None, str(error))
    return None


def _initial_values(request, project, datasets) -> tuple[dict, object]:
    """Defaults, or a run's settings for 'clone and edit' (?from=<run id>), plus ?dataset= and ?model=.

    The run may belong to another of the user's projects (a recommendation from a similar dataset): then
    only its settings come along, and its model as the preset it uses (its design, dataset and parent run
    belong to the other project)."""
    values = {**default_values(), "nproc_per_node": 1, "gpus_per_node": 0, "nnodes": 1, "queue": "cpu", "name": ""}
    source = None
    wanted = request.GET.get("from", "")
    if wanted.isdigit():
        source = selectors.run_list(user=request.user).select_related("design").filter(id=int(wanted)).first()
    if source is not None:
        values.update(values_from_config(source.config))
        values.update(queue=source.queue.name, nproc_per_node=source.resources.get("nproc_per_node", 1),
                      gpus_per_node=source.resources.get("gpus_per_node", 0),
                      nnodes=source.resources.get("nnodes", 1))
        if source.project_id == project.pk:
            values.update(dataset=source.dataset_id, model=f"design:{source.design_id}",
                          fine_tune_from=source.fine_tuned_from_id,
                          freeze=", ".join((source.init or {}).get("freeze", [])))
        elif source.effective_model_spec.keys() == {"preset"}:
            values["model"] = f"preset:{source.effective_model_spec['preset']}"
    if request.GET.get("fine_tune_from", "").isdigit():
        values["fine_tune_from"] = int(request.GET["fine_tune_from"])
    if request.GET.get("dataset", "").isdigit():
        values["dataset"] = int(request.GET["dataset"])
    if request.GET.get("model"):
        values["model"] = request.GET["model"]
    chosen = next((d for d in datasets if d.pk == values.get("dataset")), datasets[0] if datasets else None)
    if chosen is not None:
        values["dataset"] = chosen.pk
        values.setdefault("model", "preset:small_cnn" if chosen.modality == "image" else "preset:mlp")
    return values, source


def _model_groups(user, project) -> list[tuple[str, list[tuple[str, str]]]]:
    designs = [(f"design:{design.pk}", f"{design.name} v{design.version} · {design.family}")
               for design in selectors.design_list(user=user, project_id=project.pk)[:300]]
    presets = [(f"preset:{preset['name']}", preset["label"]) for preset in preset_choices()]
    return ([(f"Designs in {project.name}", designs)] if designs else []) + [("Presets", presets)]


@login_required
def run_launch(request):
    project, projects = _current_project(request)
    if project is None:
        return render(request, "frontend/runs/launch.html", {"project": None})
    datasets = list(ready_datasets(request.user, project))
    if request.method == "POST":
        form = LaunchForm(request.POST)
        if form.is_valid():
            run = _launch(request, form, project)
            if run is not None:
                return redirect("run-detail", run_id=run.pk)
        values, source = {**request.POST.dict(), "nesterov": "nesterov" in request.POST,
                          "early_stopping": "early_stopping" in request.POST,
                          "deterministic": "deterministic" in request.POST, "hflip": "hflip" in request.POST}, None
        status = 400
    else:
        values, source = _initial_values(request, project, datasets)
        form, status = None, 200
    earlier = (selectors.run_list(user=request.user, project_id=project.pk)
               .annotate(checkpoint_count=Count("checkpoints")).filter(checkpoint_count__gt=0)[:100])
    choices = {
        "queue": [(queue.name, f"{queue.name}{' (paused)' if queue.paused else ''}{' · ' + queue.description if queue.description else ''}")
                  for queue in Queue.objects.order_by("priority", "name")],
        "fine_tune_from": [("", "— train from scratch —")] + [
            (run.pk, f"{run} · {run.dataset} · {run.design} · {run.status}") for run in earlier],
    }
    errors = form.errors if form is not None else {}
    return render(request, "frontend/runs/launch.html", {
        "project": project, "projects": projects, "values": values, "source": source, "errors": errors,
        "datasets": datasets, "datasets_json": [dataset_facts(d) for d in datasets],
        "model_groups": _model_groups(request.user, project),
        "model_concepts": json.dumps(model_concepts(request.user, project)),
        "essentials": field_rows(ESSENTIALS, values, errors, choices),
        "advanced": [{"title": title, "fields": field_rows(names, values, errors, choices),
                      "images_only": title == "Augmentation"} for title, names in ADVANCED],
        "advanced_errors": any(name in errors for _, names in ADVANCED for name in names),
        "non_field_errors": errors.get("__all__", []),
    }, status=status)


