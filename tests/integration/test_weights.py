"""Fine-tuning inputs: uploaded safetensors accepted, pickles refused unread, weights that do not fit
the design refused at launch with the mismatched tensors listed."""
import io

import pytest
import torch
from safetensors.torch import save as save_safetensors

from trainer_app.engine.models import build_model
from trainer_app.models import Dataset, Role, Run, WeightsFile
from trainer_app.services.datasets import datasets_seed_samples
from trainer_app.services.queues import queues_ensure_defaults
from trainer_app.specs import media_path

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def lab(user_factory, project_factory, api_client):
    user = user_factory("ana")
    project = project_factory("lab", (user, Role.ANALYST))
    datasets_seed_samples(project=project, created_by=user)
    queues_ensure_defaults()
    api_client.force_authenticate(user)
    cnn = api_client.post("/api/models/", {"project": project.id, "name": "cnn", "spec": {"preset": "small_cnn"}},
                          format="json").json()["id"]
    return {"client": api_client, "project": project, "cnn": cnn,
            "digits": Dataset.objects.get(project=project, name="digits")}


def upload(lab, content: bytes, filename: str):
    file = io.BytesIO(content)
    file.name = filename
    return lab["client"].post("/api/weights/", {"project": lab["project"].id, "file": file}, format="multipart")


def weights_of(spec, input_shape, outputs) -> bytes:
    torch.manual_seed(0)
    return save_safetensors(build_model(spec, input_shape, outputs).state_dict())


def launch(lab, weights_id, **extra):
    body = {"project": lab["project"].id, "dataset": lab["digits"].id, "model": lab["cnn"], "queue": "cpu",
            "config": {"epochs": 1}, "init_weights": weights_id, **extra}
    return lab["client"].post("/api/runs/", body, format="json")


def test_a_pickle_is_refused_and_nothing_is_kept(lab):
    buffer = io.BytesIO()
    torch.save({"weight": torch.zeros(2)}, buffer)
    response = upload(lab, buffer.getvalue(), "model.safetensors")
    assert response.status_code == 400 and "pickle" in response.json()["file"][0]
    garbage = upload(lab, b"not weights at all, just text", "w.safetensors")
    assert garbage.status_code == 400 and "not a safetensors file" in garbage.json()["file"][0]
    assert not WeightsFile.objects.exists()
    assert not list(media_path("weights").glob("*")) if media_path("weights").exists() else True


def test_fitting_weights_launch_a_fine_tuned_run_and_the_head_may_differ(lab):
    ten_classes = upload(lab, weights_of({"preset": "small_cnn"}, [1, 8, 8], 10), "digits-cnn.safetensors").json()
    assert ten_classes["tensors"] == 10
    response = launch(lab, ten_classes["id"], freeze=["conv1"])
    assert response.status_code == 201, response.json()
    run = Run.objects.get(id=response.json()["id"])
    assert run.init_weights_id == ten_classes["id"] and run.init["freeze"] == ["conv1"]
    five_classes = upload(lab, weights_of({"preset": "small_cnn"}, [1, 8, 8], 5), "five.safetensors").json()
    assert launch(lab, five_classes["id"]).status_code == 201  # only the head differs: it is replaced


def test_weights_of_another_architecture_list_the_mismatched_tensors(lab):
    mlp = upload(lab, weights_of({"preset": "mlp"}, [1, 8, 8], 10), "mlp.safetensors").json()
    response = launch(lab, mlp["id"])
    message = response.json()["init_weights"][0]
    assert response.status_code == 400 and "does not fit" in message and "conv1.weight" in message
    assert not Run.objects.exists()


def test_freezing_an_unknown_layer_or_without_weights_is_refused(lab):
    weights = upload(lab, weights_of({"preset": "small_cnn"}, [1, 8, 8], 10), "cnn.safetensors").json()
    unknown = launch(lab, weights["id"], freeze=["encoder"])
    assert unknown.status_code == 400 and "conv1" in unknown.json()["freeze"][0]
    no_weights = launch(lab, None, freeze=["conv1"])
    assert no_weights.status_code == 400 and "fine-tuning" in no_weights.json()["freeze"][0]
    assert not Run.objects.exists()


def test_freezable_layers_are_listed_for_a_design_on_a_dataset(lab):
    response = lab["client"].get(f"/api/models/{lab['cnn']}/layers/", {"dataset": lab["digits"].id})
    names = [layer["name"] for layer in response.json()["layers"]]
    assert response.status_code == 200 and "conv1" in names
