"""The model and run pages: who sees them, what they show, and the launch form, which refuses bad input with the
message next to the field and creates nothing. No worker runs here: launched runs stay queued."""
import html
import json
import re
import uuid
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from trainer_app.engine.dataset_format import SPLITS, DatasetMeta, write_meta, write_split
from trainer_app.models import (Checkpoint, Dataset, DatasetStatus, MetricPoint, ModelDesign, Queue, Role, Run, RunLog,
                                RunMetric)

pytestmark = pytest.mark.django_db

DIGITS_CNN = {"layers": [
    {"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1}, {"type": "ReLU"},
    {"type": "MaxPool2d", "kernel_size": 2}, {"type": "Flatten"}, {"type": "Linear", "out_features": 3},
]}


def canonical_dataset(project, user, *, name="tiny", image=True, classes=3, sizes=(24, 6, 6)) -> Dataset:
    """A ready dataset with a real canonical directory under MEDIA_ROOT (1x8x8 images or 5 features)."""
    shape = [1, 8, 8] if image else [5]
    relative = Path("datasets") / f"test-{uuid.uuid4().hex}"
    directory = Path(settings.MEDIA_ROOT) / relative
    directory.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, size in zip(SPLITS, sizes):
        features = (rng.integers(0, 255, (size, *shape), dtype=np.uint8) if image
                    else rng.normal(size=(size, *shape)).astype(np.float32))
        write_split(directory, split, features, rng.integers(0, classes, size).astype(np.int64))
    class_names = [f"c{index}" for index in range(classes)]
    splits = dict(zip(SPLITS, sizes))
    write_meta(directory, DatasetMeta(task="classification", modality="image" if image else "table",
                                      input_shape=shape, num_classes=classes, splits=splits, class_names=class_names,
                                      normalization={"mean": [0.0] * shape[0], "std": [1.0] * shape[0]}))
    return Dataset.objects.create(project=project, name=name, status=DatasetStatus.READY, task="classification",
                                  modality="image" if image else "table", input_shape=shape, num_classes=classes,
                                  splits=splits, class_names=class_names, num_samples=sum(sizes),
                                  storage_dir=str(relative), created_by=user)


@pytest.fixture
def lab(user_factory, project_factory, client):
    """A signed-in analyst with an image dataset, a layer design and the cpu queue."""
    user = user_factory("ana")
    project = project_factory("vision", (user, Role.ANALYST))
    dataset = canonical_dataset(project, user)
    design = ModelDesign.objects.create(project=project, name="tiny-cnn", spec=DIGITS_CNN, created_by=user)
    Queue.objects.get_or_create(name="cpu")
    client.force_login(user)
    return {"user": user, "project": project, "dataset": dataset, "design": design, "client": client}


def launch_data(lab, **changes) -> dict:
    """What the launch form posts with its defaults untouched."""
    from frontend.views.launch import default_values

    values = {**default_values(), "dataset": lab["dataset"].pk, "model": f"design:{lab['design'].pk}",
              "queue": "cpu", "nproc_per_node": 1, "gpus_per_node": 0, "name": "", "batch_size": 8, "epochs": 2,
              "fine_tune_from": "", "freeze": "", "grad_clip": "", "max_steps": "", **changes}
    data = {}
    for key, value in values.items():
        if isinstance(value, bool):
            if value:
                data[key] = "on"
        elif value is not None:
            data[key] = value
    return data


def make_run(lab, **fields) -> Run:
    return Run.objects.create(project=lab["project"], dataset=lab["dataset"], design=lab["design"],
                              queue=Queue.objects.get(name="cpu"), created_by=lab["user"],
                              config={"optimizer": "adam", "lr": 0.003, "epochs": 2, "batch_size": 8,
                                      "schedule": {"type": "none"}, "augmentation": {"hflip": False}}, **fields)


def field_error(response, field: str) -> str:
    match = re.search(rf'data-testid="error-{field}">([^<]*)<', response.content.decode())
    return html.unescape(match.group(1)) if match else ""


def test_the_model_and_run_pages_render_for_a_member(lab):
    client = lab["client"]
    run = make_run(lab, name="first")
    models = client.get("/models/")
    assert models.status_code == 200
    designer = json.loads(re.search(r'<script id="designer-data" type="application/json">(.*?)</script>',
                                    models.content.decode(), re.S).group(1))
    assert designer["datasets"][0]["input_shape"] == [1, 8, 8]
    assert {"required": True, "name": "out_features", "default": None} in designer["layers"]["Linear"]
    assert "small_cnn" in [preset["name"] for preset in designer["presets"]]
    assert b'data-design="tiny-cnn"' in models.content
    assert client.get(f"/models/{lab['design'].pk}/").status_code == 200
    runs = client.get("/runs/")
    assert runs.status_code == 200 and f'data-run="{run.pk}"'.encode() in runs.content
    assert client.get("/runs/new/").status_code == 200
    page = client.get(f"/runs/{run.pk}/")
    assert page.status_code == 200 and b'id="run-data"' in page.content and b"vendor/plotly.min.js" in page.content


def test_runs_and_designs_of_other_projects_are_not_found(lab, user_factory, project_factory, client):
    run = make_run(lab)
    outsider = user_factory("olga")
    project_factory("other", (outsider, Role.LEAD))
    client.force_login(outsider)
    assert client.get(f"/runs/{run.pk}/").status_code == 404
    assert client.get(f"/models/{lab['design'].pk}/").status_code == 404
    assert f'data-run="{run.pk}"'.encode() not in client.get("/runs/").content
    assert b"tiny-cnn" not in client.get("/models/").content
    assert b'data-testid="clone-notice"' not in client.get(f"/runs/new/?from={run.pk}").content


def test_an_empty_project_explains_what_to_do_first(user_factory, project_factory, client):
    user = user_factory("newcomer")
    project_factory("empty", (user, Role.ANALYST))
    client.force_login(user)
    assert b"No runs yet." in client.get("/runs/").content
    assert b"No ready dataset" in client.get("/runs/new/").content
    assert b'data-testid="designer-no-dataset"' in client.get("/models/").content


def test_launching_with_the_defaults_queues_a_run_and_opens_its_page(lab):
    response = lab["client"].post("/runs/new/", launch_data(lab, name="defaults"))
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.pk}/"
    assert run.status == "queued" and run.name == "defaults" and run.design == lab["design"]
    assert run.config["optimizer"] == "adam" and run.config["epochs"] == 2 and run.config["schedule"]["type"] == "none"
    assert run.resources == {"nproc_per_node": 1, "gpus_per_node": 0, "nnodes": 1} and run.queue.name == "cpu"


@pytest.mark.parametrize("changes, field, message", [
    ({"queue": "nowhere"}, "queue", "No queue named 'nowhere'"),
    ({"lr": "0"}, "lr", "Learning rate must be greater than 0"),
    ({"lr": "-0.1"}, "lr", "Learning rate must be greater than 0"),
    ({"batch_size": "500"}, "batch_size", "larger than the training split (24 samples)"),
    ({"schedule": "step", "gamma": "0"}, "gamma", "must be greater than 0"),
    ({"nproc_per_node": "0"}, "nproc_per_node", "nproc_per_node must be at least 1"),
    ({"nnodes": "2"}, "nnodes", "2 nodes need 2 online workers on queue 'cpu'"),
    ({"dataset": "999999"}, "dataset", "Choose a ready dataset"),
    ({"model": "design:999999"}, "model", "Choose one of the project's designs or a preset"),
])
def test_bad_input_is_refused_next_to_its_field_and_creates_nothing(lab, changes, field, message):
    response = lab["client"].post("/runs/new/", launch_data(lab, **changes))
    assert response.status_code == 400
    assert message in field_error(response, field), response.content.decode()[:3000]
    assert Run.objects.count() == 0 and ModelDesign.objects.count() == 1


def test_a_nan_learning_rate_never_reaches_the_engine(lab):
    response = lab["client"].post("/runs/new/", launch_data(lab, lr="nan"))
    assert response.status_code == 400 and b"has-error" in response.content and Run.objects.count() == 0


def test_a_design_that_does_not_fit_the_dataset_is_refused_with_the_fix(lab):
    wide = ModelDesign.objects.create(project=lab["project"], name="too-wide", spec={"layers": [
        {"type": "Flatten"}, {"type": "Linear", "out_features": 7}]})
    response = lab["client"].post("/runs/new/", launch_data(lab, model=f"design:{wide.pk}"))
    assert response.status_code == 400
    assert "set out_features of layer 2 Linear to 3" in field_error(response, "model")
    assert Run.objects.count() == 0


def test_fine_tuning_needs_a_run_with_a_checkpoint(lab):
    parent = make_run(lab, status="succeeded")
    response = lab["client"].post("/runs/new/", launch_data(lab, fine_tune_from=parent.pk, freeze="layer1"))
    assert response.status_code == 400 and "has no checkpoint yet" in field_error(response, "fine_tune_from")
    assert Run.objects.count() == 1


def test_a_preset_becomes_a_design_named_after_it_once_and_only_when_launched(lab):
    table = canonical_dataset(lab["project"], lab["user"], name="table", image=False)
    refused = lab["client"].post("/runs/new/", launch_data(lab, dataset=table.pk, model="preset:mlp", lr="0"))
    assert refused.status_code == 400 and not ModelDesign.objects.filter(name="mlp").exists()
    for _ in range(2):  # augmentation is ignored for tables: a value left in the hidden fields does not refuse it
        response = lab["client"].post("/runs/new/", launch_data(lab, dataset=table.pk, model="preset:mlp", hflip=True))
        assert response.status_code == 302
    design = ModelDesign.objects.get(name="mlp")
    assert design.spec == {"preset": "mlp"} and design.version == 1
    assert list(Run.objects.values_list("design", flat=True)) == [design.pk, design.pk]
    assert not Run.objects.first().config["augmentation"]["hflip"]


def test_clone_and_edit_prefills_the_form_from_the_run(lab):
    run = make_run(lab, name="source")
    run.config = {**run.config, "lr": 0.0042, "optimizer": "sgd", "momentum": 0.8}
    run.save()
    page = lab["client"].get(f"/runs/new/?from={run.pk}").content.decode()
    assert 'data-testid="clone-notice"' in page
    assert 'name="lr" value="0.0042"' in page and '<option value="sgd" selected>' in page
    assert f'<option value="design:{lab["design"].pk}" selected>' in page


def test_a_failed_run_page_shows_the_error_log_tail_checkpoints_summary_and_lineage(lab):
    parent = make_run(lab, status="succeeded", name="parent")
    run = make_run(lab, status="failed", error="diverged at step 12", log_tail=["epoch 1", "loss is nan"],
                   fine_tuned_from=parent, init={"weights": "x", "freeze": ["layer1"]}, stream_position="17-0",
                   step=12, total_steps=20, summary={"step": 12, "state": "failed", "values": {"val_loss": 0.51}})
    checkpoint = Checkpoint.objects.create(run=run, epoch=1, step=10, path="runs/x/weights.safetensors", best=True)
    MetricPoint.objects.bulk_create([MetricPoint(run=run, name="val_loss", step=10, value=0.51, epoch=1, time=1000.0),
                                     MetricPoint(run=run, name="lr", step=1, value=0.003, epoch=1, time=990.0)])
    RunLog.objects.bulk_create([RunLog(run=run, entry=f"{entry}-0", time=990.0 + entry, message=f"line {entry}")
                                for entry in (5, 17, 18)])  # 18 is after the stream position: the stream sends it
    run.confusion_matrix = {"split": "test", "labels": ["c0", "c1"], "matrix": [[3, 1], [0, 2]]}
    run.save()
    page = lab["client"].get(f"/runs/{run.pk}/").content.decode()
    assert "diverged at step 12" in page and "loss is nan" in page and 'data-testid="run-error"' in page
    assert f"/api/runs/{run.pk}/checkpoints/{checkpoint.pk}/" in page
    assert 'data-metric="val_loss"' in page and "frozen: layer1" in page and 'data-testid="fine-tuned-from"' in page
    data = json.loads(re.search(r'<script id="run-data" type="application/json">(.*?)</script>', page, re.S).group(1))
    assert data["stream_position"] == "17-0" and data["live"] is False
    assert data["anchors"]["epoch"] == [[10, 1.0]] and [1, 990.0] in data["anchors"]["time"]
    assert [line["message"] for line in data["logs"]] == ["line 5", "line 17"]
    assert data["confusion"]["matrix"] == [[3, 1], [0, 2]]
    resume = re.search(r'<button[^>]*id="run-resume"[^>]*>', page).group(0)
    cancel = re.search(r'<button[^>]*id="run-cancel"[^>]*>', page).group(0)
    assert "hidden" not in resume and "hidden" in cancel


def test_the_runs_list_shows_the_result_progress_and_refreshes_while_runs_are_active(lab):
    done = make_run(lab, status="succeeded", summary={"values": {"test_accuracy": 0.9731, "val_loss": 0.12}})
    running = make_run(lab, status="running", step=30, total_steps=120)
    RunMetric.objects.create_for(running,
                             name="val_loss", last=0.4567, last_step=20, min=0.4567, max=0.9, count=2)
    page = lab["client"].get("/runs/").content.decode()
    assert "0.9731" in page and "0.4567" in page and "30/120" in page and 'hx-trigger="every 3s"' in page
    finished_only = lab["client"].get("/runs/?status=succeeded").content.decode()
    assert f'data-run="{done.pk}"' in finished_only and f'data-run="{running.pk}"' not in finished_only


def test_the_run_page_refreshes_only_its_panels_for_htmx(lab):
    run = make_run(lab)
    response = lab["client"].get(f"/runs/{run.pk}/", HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and body.lstrip().startswith('<div id="run-panels"') and "<html" not in body


def test_the_designs_list_shows_parameters_of_layer_designs(lab):
    page = lab["client"].get("/models/").content.decode()
    # Conv2d 1->4 3x3 (40) + Linear 64->3 (195) on 1x8x8
    assert ">235<" in page
