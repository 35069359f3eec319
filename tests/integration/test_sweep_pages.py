"""The sweep pages as the server renders them: the list and its empty state, the new-sweep form, a sweep's
page, a trial run's link back to its sweep, and who may see them. No worker runs here: trials stay queued."""
import html
import json
import re

import pytest

from trainer_app.models import Dataset, Role, Run
from trainer_app.services.datasets import datasets_seed_samples
from trainer_app.services.designs import design_create
from trainer_app.services.queues import queues_ensure_defaults
from trainer_app.services.sweeps import sweep_create, sweep_step


@pytest.fixture
def lab(transactional_db, user_factory, project_factory, client):
    """A signed-in analyst in a project with the sample datasets and a small MLP design (Optuna writes through
    its own connection: the data must be committed)."""
    user = user_factory("sam")
    project = project_factory("sweeps", (user, Role.ANALYST))
    datasets_seed_samples(project=project, created_by=user)
    queues_ensure_defaults()
    design = design_create(project=project, name="digits-mlp", spec={"preset": "mlp", "options": {"hidden": [16]}},
                           created_by=user)
    client.force_login(user)
    return {"client": client, "project": project, "user": user, "design": design,
            "digits": Dataset.objects.get(project=project, name="digits")}


def make_sweep(lab, **changes):
    arguments = {
        "project": lab["project"], "dataset": lab["digits"], "design": lab["design"], "created_by": lab["user"],
        "name": "lr search", "config": {"optimizer": "adam", "batch_size": 64, "epochs": 4, "seed": 0},
        "search_space": {"lr": {"type": "float", "low": 1e-4, "high": 0.05, "log": True}},
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "sampler": "random", "pruner": "median", "n_trials": 6, "parallelism": 2,
    }
    arguments.update(changes)
    return sweep_create(**arguments)


def page_text(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", response.content.decode()))


def test_the_sweeps_list_says_what_to_do_when_there_is_none(lab):
    response = lab["client"].get("/sweeps/")
    assert response.status_code == 200
    text = page_text(response)
    assert "No sweeps yet" in text and "Optuna runs the trials" in text
    assert f'href="/sweeps/new/?project={lab["project"].pk}"' in response.content.decode()
    assert 'data-testid="sweeps"' not in text


def test_the_sweeps_list_shows_each_sweep_with_its_progress(lab):
    sweep = make_sweep(lab)
    response = lab["client"].get("/sweeps/")
    text = page_text(response)
    assert response.status_code == 200 and 'data-testid="sweeps"' in text
    row = re.search(rf'<tr data-sweep="{sweep.pk}".*?</tr>', text).group(0)
    for expected in ("lr search", 'status-queued', "digits", "digits-mlp", "random / median", "0/6",
                     "maximize val_accuracy", f'href="/sweeps/{sweep.pk}/"'):
        assert expected in row, expected
    # While a sweep is active the table refreshes itself (htmx), and the refresh renders the table alone.
    assert 'hx-trigger="every 3s"' in text
    partial = lab["client"].get("/sweeps/", headers={"HX-Request": "true"})
    assert partial.content.decode().lstrip().startswith('<div id="sweep-table"')


def test_the_sweeps_list_follows_the_project_switcher(lab, project_factory):
    make_sweep(lab)
    other = project_factory("other", (lab["user"], Role.ANALYST))
    response = lab["client"].get(f"/sweeps/?project={other.pk}")
    assert "No sweeps yet" in page_text(response)
    assert 'name="project"' in page_text(response)  # the switcher, since the user has two projects
    assert "No sweeps yet" in page_text(lab["client"].get("/sweeps/"))  # the choice is remembered
    assert "lr search" in page_text(lab["client"].get(f"/sweeps/?project={lab['project'].pk}"))


def test_a_user_without_a_project_is_told_how_to_get_one(transactional_db, user_factory, client):
    client.force_login(user_factory("loner"))
    for path in ("/sweeps/", "/sweeps/new/"):
        response = client.get(path)
        assert response.status_code == 200 and "You are not in a project yet" in page_text(response)


def test_the_form_offers_the_projects_ready_datasets_designs_and_choices(lab):
    response = lab["client"].get("/sweeps/new/")
    assert response.status_code == 200
    text = page_text(response)
    assert re.search(rf'<option value="{lab["digits"].pk}"[^>]*>digits v1', text)
    assert f'<option value="design:{lab["design"].pk}">digits-mlp v1' in text
    assert '<option value="preset:small_cnn"' in text
    for sampler in ("tpe", "random", "grid", "cmaes", "nsga2", "qmc"):
        assert f'<option value="{sampler}" title="' in text
    assert "ASHA (asynchronous successive halving)" in text and "TPE (Tree-structured Parzen Estimator)" in text
    assert "Trials to try first" in text and 'name="warm_start"' in text
    data = json.loads(re.search(r'<script id="sweep-form-data" type="application/json">(.*?)</script>',
                                response.content.decode()).group(1))
    assert data["project"] == lab["project"].pk
    assert {"val_accuracy", "test_accuracy", "parameters"} <= {m["name"] for m in data["metrics"]["classification"]}
    assert [design["options"] for design in data["designs"] if design["id"] == lab["design"].pk][0] == [
        "model.activation", "model.batch_norm", "model.depth", "model.dropout", "model.hidden", "model.width"]
    names = {entry["name"] for entry in data["parameter_names"]}
    assert {"lr", "batch_size", "optimizer", "schedule.type", "augmentation.hflip"} <= names


def test_the_sweep_page_shows_its_settings_and_warnings(lab):
    from trainer_app.models import Queue

    Queue.objects.get_or_create(name="unserved")  # no worker consumes it, whatever else this session runs
    sweep = make_sweep(lab, queue_name="unserved",
                       search_space={"lr": {"type": "float", "low": 1e-4, "high": 0.05, "log": True},
                                     "optimizer": {"type": "categorical", "choices": ["adam"]}})
    response = lab["client"].get(f"/sweeps/{sweep.pk}/?created=1")
    assert response.status_code == 200
    text = page_text(response)
    assert "lr search" in text and 'data-status="queued"' in text
    assert "Sweep created" in text
    assert "optimizer has one choice" in text and "No worker is online" in text  # the create warnings
    assert "float 0.0001 … 0.05, log scale" in text and "one of adam" in text
    assert "0 of 6 trials" in text and "maximize val_accuracy" in text and "random / median" in text
    assert 'data-testid="chart-tab-history"' in text and 'data-testid="chart-tab-pareto"' not in text
    assert "vendor/plotly.min.js" in text and "trainyard/js/sweep_live.js" in text
    assert "Sweep created" not in page_text(lab["client"].get(f"/sweeps/{sweep.pk}/"))


def test_a_trial_run_page_links_back_to_its_sweep(lab):
    sweep = make_sweep(lab)
    sweep_step(sweep_id=sweep.pk)  # the controller launches the first trials (they stay queued: no worker)
    run = Run.objects.filter(sweep=sweep).order_by("trial_number").first()
    assert run is not None
    text = page_text(lab["client"].get(f"/runs/{run.pk}/"))
    assert f'<a href="/sweeps/{sweep.pk}/" data-testid="run-sweep">trial {run.trial_number} of sweep {sweep.pk}</a>' in text
    assert "2/6" not in page_text(lab["client"].get("/sweeps/"))  # nothing finished yet
    assert "0/6" in page_text(lab["client"].get("/sweeps/")) and "(2 running)" in page_text(lab["client"].get("/sweeps/"))


def test_a_sweep_of_another_project_is_not_found(lab, user_factory, project_factory, client):
    sweep = make_sweep(lab)
    outsider = user_factory("eve")
    project_factory("elsewhere", (outsider, Role.ANALYST))
    client.force_login(outsider)
    assert client.get(f"/sweeps/{sweep.pk}/").status_code == 404
    assert "lr search" not in page_text(client.get("/sweeps/"))
    assert "No sweeps yet" in page_text(client.get(f"/sweeps/?project={lab['project'].pk}"))


def test_signed_out_visitors_are_sent_to_the_login_page(lab, client):
    sweep = make_sweep(lab)
    client.logout()
    for path in ("/sweeps/", "/sweeps/new/", f"/sweeps/{sweep.pk}/"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/?next="), path
