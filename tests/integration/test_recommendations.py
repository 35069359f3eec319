"""Recommendations from history: the best seed groups on a dataset and on similar ones with their evidence and
similarity, the defaults (with reasons) when there is no history, nothing from projects one cannot see, and
the pages' links (launch this, start a sweep from these)."""
from urllib.parse import parse_qs, urlparse

import pytest

from trainer_app.models import Dataset, DatasetStatus, ModelDesign, Queue, Role, Run, RunKind, RunMetric, RunStatus
from trainer_app.services.runs import config_key


@pytest.fixture
def world(db, user_factory, project_factory):
    analyst = user_factory("ana")
    outsider = user_factory("olga")
    lab = project_factory("lab", (analyst, Role.ANALYST))
    other = project_factory("other", (outsider, Role.ANALYST))
    queue, _ = Queue.objects.get_or_create(name="cpu")

    def dataset(project, name, *, shape=(1, 8, 8), classes=10, samples=1797, task="classification", modality="image"):
        return Dataset.objects.create(project=project, name=name, status=DatasetStatus.READY, task=task,
                                      modality=modality, input_shape=list(shape), num_classes=classes,
                                      num_samples=samples, splits={"train": int(samples * 0.7), "val": 100, "test": 100})

    def design(project, name="cnn", spec=None):
        return ModelDesign.objects.create(project=project, name=name, spec=spec or {"preset": "small_cnn"})

    def run(project, data, model, *, value, lr=0.001, seed=0, status=RunStatus.SUCCEEDED, metric="val_accuracy",
            kind=RunKind.RUN, archived=False, batch_size=64, optimizer="adam"):
        config = {"optimizer": optimizer, "lr": lr, "batch_size": batch_size, "epochs": 5, "seed": seed}
        made = Run.objects.create(project=project, dataset=data, design=model, queue=queue, status=status,
                                  config=config, kind=kind, archived=archived, created_by=analyst,
                                  config_key=config_key(dataset_id=data.pk, design_id=model.pk, config=config,
                                                        init={}))
        RunMetric.objects.create_for(made, name=metric, last=value,
                                 last_step=10, min=value - 0.2, max=value, count=5)
        return made

    return {"analyst": analyst, "outsider": outsider, "lab": lab, "other": other, "dataset": dataset,
            "design": design, "run": run}


def ask(api_client, user, dataset):
    api_client.force_authenticate(user)
    response = api_client.get(f"/api/datasets/{dataset.pk}/recommendations/")
    assert response.status_code == 200, response.content
    return response.json()


def test_the_best_seed_groups_on_the_dataset_come_first_with_their_runs_and_mean(world, api_client):
    digits, cnn = world["dataset"](world["lab"], "digits"), world["design"](world["lab"])
    good = [world["run"](world["lab"], digits, cnn, value=value, lr=0.003, seed=seed)
            for seed, value in enumerate([0.97, 0.95, 0.96])]
    fair = [world["run"](world["lab"], digits, cnn, value=value, lr=0.0003, seed=seed)
            for seed, value in enumerate([0.90, 0.92])]
    # not history: failed, archived, a learning-rate finder
    world["run"](world["lab"], digits, cnn, value=0.99, lr=0.1, status=RunStatus.FAILED)
    world["run"](world["lab"], digits, cnn, value=0.99, lr=0.2, archived=True)
    world["run"](world["lab"], digits, cnn, value=0.99, lr=0.3, kind=RunKind.LR_FINDER)

    answer = ask(api_client, world["analyst"], digits)
    assert answer["has_history"] and answer["metric"] == "val_accuracy" and answer["defaults"] is None
    first, second = answer["recommendations"]
    assert first["source"] == "this dataset" and first["similarity"] == {
        "score": 1.0, "parts": {"shape": 1.0, "classes": 1.0, "size": 1.0}, "reasons": ["this dataset"]}
    assert first["runs"] == sorted(r.pk for r in good) and first["n"] == 3 and first["best_run"] == good[0].pk
    assert first["mean"] == pytest.approx(0.96) and first["std"] == pytest.approx(0.01)
    assert first["params"] == {"optimizer": "adam", "lr": 0.003, "batch_size": 64} and "seed" not in first["config"]
    assert first["design"]["preset"] == "small_cnn" and first["rank"] == 1
    assert second["runs"] == sorted(r.pk for r in fair) and second["mean"] == pytest.approx(0.91)
    launch = urlparse(first["launch_url"])
    assert launch.path == "/runs/new/" and parse_qs(launch.query) == {
        "from": [str(good[0].pk)], "dataset": [str(digits.pk)], "project": [str(world["lab"].pk)]}
    sweep = parse_qs(urlparse(answer["sweep_url"]).query)
    assert sweep["dataset"] == [str(digits.pk)] and '"lr": 0.003' in sweep["warm_start"][0]
    assert answer["warm_start"][0] == {"batch_size": 64, "lr": 0.003, "optimizer": "adam"}


def test_history_on_a_similar_dataset_is_recommended_with_the_similarity_and_why(world, api_client):
    digits = world["dataset"](world["lab"], "digits")
    half = world["dataset"](world["lab"], "digits-half", samples=898, classes=5)
    table = world["dataset"](world["lab"], "wine", shape=(13,), classes=3, samples=178, modality="table")
    regression = world["dataset"](world["lab"], "diabetes", shape=(10,), classes=0, samples=442, task="regression",
                                  modality="table")
    cnn, mlp = world["design"](world["lab"]), world["design"](world["lab"], "mlp", {"preset": "mlp"})
    evidence = world["run"](world["lab"], half, cnn, value=0.98, lr=0.003)
    world["run"](world["lab"], table, mlp, value=1.0)  # another kind of input: not similar enough
    world["run"](world["lab"], regression, mlp, value=0.2, metric="val_loss")  # another task: never compared

    answer = ask(api_client, world["analyst"], digits)
    assert answer["has_history"] and "No finished run on digits" in answer["message"]
    [recommendation] = answer["recommendations"]
    assert recommendation["source"] == "similar dataset" and recommendation["runs"] == [evidence.pk]
    assert recommendation["dataset"]["id"] == half.pk
    similarity = recommendation["similarity"]
    # 0.4 × shape 1 + 0.3 × classes 5/10 + 0.3 × size (1 − ln 2 / ln 100)
    assert similarity["score"] == pytest.approx(0.4 + 0.15 + 0.3 * (1 - 0.6931 / 4.6052), abs=1e-3)
    assert similarity["reasons"] == ["same task (classification)", "same input shape 1×8×8", "5 classes against 10",
                                     "898 samples against 1,797 (2.0× fewer)"]
    assert [entry["id"] for entry in answer["similar_datasets"]] == [half.pk]
    # the launch link clones the similar dataset's run onto the dataset asked about
    assert parse_qs(urlparse(recommendation["launch_url"]).query)["dataset"] == [str(digits.pk)]


def test_no_history_says_so_and_falls_back_to_the_defaults_with_reasons(world, api_client):
    digits = world["dataset"](world["lab"], "digits")
    answer = ask(api_client, world["analyst"], digits)
    assert not answer["has_history"] and answer["recommendations"] == []
    assert answer["message"].startswith("No history yet")
    defaults = answer["defaults"]
    assert defaults["model"] == "preset:small_cnn" and defaults["params"]["optimizer"] == "adam"
    assert defaults["params"]["batch_size"] == 32 and defaults["params"]["lr"] == 0.001
    assert set(defaults["reasons"]) >= {"model", "batch_size", "lr", "epochs"}
    assert all(defaults["reasons"].values())
    assert "model=preset%3Asmall_cnn" in defaults["launch_url"]
    assert answer["warm_start"] == [defaults["params"]] and "warm_start=" in answer["sweep_url"]


def test_another_projects_runs_never_leak(world, api_client, user_factory):
    from trainer_app.models import Membership

    mine = world["dataset"](world["lab"], "digits")
    theirs = world["dataset"](world["other"], "digits")  # identical facts, another project
    secret = world["run"](world["other"], theirs, world["design"](world["other"]), value=0.999, lr=0.0042)
    answer = ask(api_client, world["analyst"], mine)
    assert answer["recommendations"] == [] and answer["similar_datasets"] == [] and answer["defaults"]
    assert "0.0042" not in str(answer)
    # a member of both projects sees it, as a similar dataset of another project
    Membership.objects.create(project=world["other"], user=world["analyst"], role=Role.ANALYST)
    [recommendation] = ask(api_client, world["analyst"], mine)["recommendations"]
    assert recommendation["runs"] == [secret.pk] and recommendation["dataset"]["project"] == world["other"].pk


def test_a_dataset_one_cannot_see_is_not_found(world, api_client):
    theirs = world["dataset"](world["other"], "digits")
    api_client.force_authenticate(world["analyst"])
    response = api_client.get(f"/api/datasets/{theirs.pk}/recommendations/")
    assert response.status_code == 404
    api_client.force_authenticate(None)
    assert api_client.get(f"/api/datasets/{theirs.pk}/recommendations/").status_code in (401, 403)


def test_regression_ranks_by_the_lowest_validation_loss(world, api_client):
    diabetes = world["dataset"](world["lab"], "diabetes", shape=(10,), classes=0, samples=442, task="regression",
                                modality="table")
    mlp = world["design"](world["lab"], "mlp", {"preset": "mlp"})
    worse = world["run"](world["lab"], diabetes, mlp, value=0.9, lr=0.01, metric="val_loss")
    better = world["run"](world["lab"], diabetes, mlp, value=0.5, lr=0.001, metric="val_loss")
    answer = ask(api_client, world["analyst"], diabetes)
    assert answer["metric"] == "val_loss" and answer["direction"] == "min"
    assert [r["best_run"] for r in answer["recommendations"]] == [better.pk, worse.pk]
    assert answer["recommendations"][0]["mean"] == pytest.approx(0.3)  # the run's lowest val_loss (min column)


def test_the_pages_carry_the_panel_and_launch_this_clones_a_run_of_another_visible_project(world, client):
    from trainer_app.models import Membership

    mine = world["dataset"](world["lab"], "digits")
    theirs = world["dataset"](world["other"], "digits-b")
    source = world["run"](world["other"], theirs, world["design"](world["other"]), value=0.98, lr=0.0042,
                          optimizer="sgd", batch_size=32)
    Membership.objects.create(project=world["other"], user=world["analyst"], role=Role.ANALYST)
    client.force_login(world["analyst"])
    page = client.get(f"/datasets/{mine.pk}/").content.decode()
    assert 'data-testid="recommendations"' in page and f'data-dataset="{mine.pk}"' in page
    assert "recommendations.js" in page
    launch = client.get(f"/runs/new/?from={source.pk}&dataset={mine.pk}&project={world['lab'].pk}")
    assert launch.status_code == 200
    body = launch.content.decode()
    assert 'data-testid="recommendations"' in body and "recommendations.js" in body
    assert 'value="0.0042"' in body and 'value="32"' in body  # the settings came along
    assert f'value="{mine.pk}" data-modality="image" data-task="classification" selected' in body
    assert 'value="preset:small_cnn" selected' in body  # its design is in another project: the preset it uses
