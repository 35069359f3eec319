"""Sweeps through the API on real Celery workers (a training worker and a control worker) supervising real
torchrun trials: pruning with its reason, promotion, live control, a controller killed mid-sweep, and the
bad inputs."""
import signal

import optuna
import pytest

from tests.conftest import start_worker, stop_worker, wait_until
from trainer_app import studies
from trainer_app.models import Dataset, Queue, Role, Run, Sweep, Worker, WorkerStatus
from trainer_app.services.datasets import datasets_seed_samples
from trainer_app.services.queues import queues_ensure_defaults
from trainer_app.services.sweeps import sweep_step

FINAL = {"finished", "stopped", "failed"}


@pytest.fixture
def lab(transactional_db, user_factory, project_factory, api_client):
    user = user_factory("sam")
    project = project_factory("sweeps", (user, Role.ANALYST))
    datasets_seed_samples(project=project, created_by=user)
    queues_ensure_defaults()
    Queue.objects.get_or_create(name="held", defaults={"description": "consumed by no worker: trials stay queued"})
    api_client.force_authenticate(user)
    mlp = api_client.post("/api/models/", {"project": project.id, "name": "mlp",
                                           "spec": {"preset": "mlp", "options": {"hidden": [32]}}}, format="json").json()
    cnn = api_client.post("/api/models/", {"project": project.id, "name": "cnn", "spec": {"preset": "small_cnn"}},
                          format="json").json()
    return {"client": api_client, "project": project, "user": user, "mlp": mlp["id"], "cnn": cnn["id"],
            "digits": Dataset.objects.get(project=project, name="digits").id,
            "wine": Dataset.objects.get(project=project, name="wine").id}


@pytest.fixture
def control_worker(django_db_blocker, tmp_path):
    with django_db_blocker.unblock():
        process = start_worker(queues="control", name="control", log=tmp_path / "control.log")
    yield process
    stop_worker(process)


def body(lab, **overrides):
    data = {"project": lab["project"].id, "dataset": lab["digits"], "model": lab["mlp"],
            "config": {"optimizer": "adam", "batch_size": 64, "epochs": 3, "seed": 0},
            "search_space": {"lr": {"type": "float", "low": 1e-4, "high": 0.05, "log": True}},
            "objective": {"metric": "val_accuracy", "direction": "maximize"},
            "sampler": "tpe", "pruner": "none", "n_trials": 4, "parallelism": 1,
            "timeout_s": None, "target_value": None,  # what the form sends for empty fields
            "queue": "held"}  # no worker: the controller's steps are the test's; real trials say queue="cpu"
    data.update(overrides)
    return data


def create(lab, **overrides):
    return lab["client"].post("/api/sweeps/", body(lab, **overrides), format="json")


def wait_sweep(lab, sweep_id, statuses=FINAL, timeout_s=300):
    def reached():
        data = lab["client"].get(f"/api/sweeps/{sweep_id}/").json()
        return data if data["status"] in statuses else None

    return wait_until(reached, timeout_s=timeout_s, interval_s=1, message=f"sweep {sweep_id} to reach {statuses}")


# --- bad input --------------------------------------------------------------------------------------

@pytest.mark.parametrize("space, field, words", [
    ({}, "search_space", "empty"),
    ({"lr": {"type": "float", "low": 0.1, "high": 0.01}}, "search_space", "greater than high"),
    ({"lr": {"type": "float", "low": 0, "high": 0.1, "log": True}}, "search_space", "log scale needs low > 0"),
    ({"lr": {"type": "banana", "low": 0, "high": 1}}, "search_space", "not one of float, int, categorical"),
    ({"lr": {"type": "float", "low": "a", "high": 1}}, "search_space", "low must be a number"),
    ({"batch_size": {"type": "int", "low": 16.5, "high": 64}}, "search_space", "whole-number bounds"),
    ({"colour": {"type": "categorical", "choices": ["red", "blue"]}}, "search_space", "not a training setting"),
    ({"model.depth": {"type": "int", "low": 1, "high": 3}, "model.banana": {"type": "int", "low": 1, "high": 2}},
     "search_space", "no option 'banana'"),
])
def test_invalid_search_spaces_are_refused_with_the_fix(lab, space, field, words):
    response = create(lab, search_space=space)
    assert response.status_code == 400, response.json()
    assert words in str(response.json()[field]), response.json()
    assert not Sweep.objects.exists()


def test_a_categorical_with_one_choice_is_accepted_with_a_warning(lab):
    response = create(lab, search_space={"lr": {"type": "float", "low": 1e-3, "high": 1e-2},
                                         "optimizer": {"type": "categorical", "choices": ["adam"]}})
    assert response.status_code == 201, response.json()
    assert any("one choice" in warning for warning in response.json()["warnings"])


def test_a_grid_larger_than_the_budget_shows_its_size_and_asks_to_confirm(lab):
    space = {"lr": {"type": "categorical", "choices": [0.001, 0.003, 0.01, 0.03]},
             "batch_size": {"type": "categorical", "choices": [32, 64, 128]}}
    response = create(lab, sampler="grid", search_space=space, n_trials=5)
    assert response.status_code == 400
    assert response.json()["grid_size"] == 12 and "grid has 12 points" in response.json()["n_trials"][0]
    confirmed = create(lab, sampler="grid", search_space=space, n_trials=5, confirm_partial_grid=True)
    assert confirmed.status_code == 201 and confirmed.json()["n_trials"] == 5
    unbounded = create(lab, sampler="grid", search_space={"lr": {"type": "float", "low": 0.001, "high": 0.1}})
    assert unbounded.status_code == 400 and "needs a step" in str(unbounded.json())


@pytest.mark.parametrize("overrides, field, words", [
    ({"objective": {"metric": "val_r2", "direction": "maximize"}}, "objective", "does not produce 'val_r2'"),
    ({"objective": {"metric": "val_accuracy", "direction": "up"}}, "objective", "not maximize or minimize"),
    ({"objectives": [{"metric": "val_accuracy", "direction": "maximize"},
                     {"metric": "parameters", "direction": "minimize"}], "pruner": "median"},
     "pruner", "cannot prune a search with several objectives"),
    ({"objective": {"metric": "test_accuracy", "direction": "maximize"}, "pruner": "asha"}, "pruner",
     "comes only at the end"),
    ({"sampler": "annealing"}, "sampler", "not one of tpe"),
    ({"pruner": "wolf"}, "pruner", "not one of none"),
    ({"n_trials": 0}, "n_trials", "at least 1"),
    ({"parallelism": "many"}, "parallelism", "whole number"),
    ({"target_value": "high"}, "target_value", "must be a number"),
])
def test_bad_sweep_settings_are_refused(lab, overrides, field, words):
    response = create(lab, **overrides)
    assert response.status_code == 400 and words in str(response.json()[field]), response.json()


def test_parallelism_above_the_fleet_is_accepted_with_the_wait_shown(lab):
    from django.utils import timezone

    now = timezone.now()
    Queue.objects.create(name="wide")  # a queue only this worker consumes (the session's test worker takes cpu)
    Worker.objects.create(name="wide@box", hostname="box", status=WorkerStatus.ONLINE, queues=["wide", "default"],
                          cpu_count=2, ram_mb=1000, software={"concurrency": 2}, started_at=now, last_heartbeat=now)
    response = create(lab, parallelism=5, queue="wide")
    assert response.status_code == 201
    assert any("3 trial(s) will wait" in warning for warning in response.json()["warnings"]), response.json()


def test_sweeps_of_other_projects_are_not_found(lab, user_factory, project_factory, api_client):
    sweep_id = create(lab).json()["id"]
    outsider = user_factory("eve")
    project_factory("elsewhere", (outsider, Role.ANALYST))
    api_client.force_authenticate(outsider)
    for method, path in (("get", f"/api/sweeps/{sweep_id}/"), ("post", f"/api/sweeps/{sweep_id}/stop/"),
                         ("get", f"/api/sweeps/{sweep_id}/charts/history/"),
                         ("post", f"/api/sweeps/{sweep_id}/promote/")):
        response = getattr(api_client, method)(path)
        assert response.status_code == 404 and "sweeps" not in response.content.decode().replace("sweeps among", "")
    assert api_client.get("/api/sweeps/").json() == []


# --- the controller, deterministic -----------------------------------------------------------------------

def test_a_trial_handed_out_by_a_controller_that_died_is_adopted_not_lost_or_duplicated(lab):
    sweep = Sweep.objects.get(id=create(lab, n_trials=3, parallelism=2).json()["id"])
    study = optuna.load_study(study_name=sweep.study_name, storage=studies.storage())
    orphan = study.ask(studies.distributions(sweep.search_space))  # a controller asked, then died
    assert not Run.objects.filter(sweep=sweep).exists()
    sweep_step(sweep_id=sweep.id)
    sweep_step(sweep_id=sweep.id)  # a second step (a redelivery) changes nothing
    runs = list(Run.objects.filter(sweep=sweep).order_by("trial_number"))
    assert [run.trial_number for run in runs] == [orphan.number, orphan.number + 1]
    assert runs[0].config["lr"] == orphan.params["lr"] and runs[0].kind == "trial"
    assert len(study.get_trials()) == 2, "parallelism 2: the adopted trial and one new one"


def test_a_design_space_trial_that_does_not_fit_fails_fast_and_the_sweep_goes_on(lab):
    response = create(lab, model=lab["cnn"], n_trials=4, parallelism=4,
                      search_space={"model.padding": {"type": "categorical", "choices": [0, 2]},
                                    "lr": {"type": "float", "low": 1e-3, "high": 1e-2}},
                      warm_start=[{"model.padding": 0, "lr": 0.003}, {"model.padding": 2, "lr": 0.003}])
    assert response.status_code == 201, response.json()
    sweep_step(sweep_id=response.json()["id"])
    detail = lab["client"].get(f"/api/sweeps/{response.json()['id']}/").json()
    first, second = detail["trials"][0], detail["trials"][1]
    assert first["state"] == "fail" and "does not fit 8x8 images with padding 0" in first["error"]
    assert first["run"] is None and first["source"] == "history"
    assert second["state"] == "running" and second["run"] is not None
    run = Run.objects.get(id=second["run"])
    assert run.model_spec == {"preset": "small_cnn", "options": {"padding": 2}}
    assert detail["status"] == "running" and len(detail["trials"]) == 4, "the failed trial did not stop the sweep"


# --- real trials ---------------------------------------------------------------------------------------------

@pytest.mark.usefixtures("celery_worker_process")
def test_a_sweep_runs_prunes_with_a_reason_and_promotes_its_best(lab, control_worker):
    """Five trials in a fixed order (warm start): three good learning rates complete, then a hopeless one is
    pruned by the median rule at epoch 2 with the figures it compared."""
    order = [{"lr": 0.01}, {"lr": 0.02}, {"lr": 0.005}, {"lr": 1e-6}, {"lr": 0.008}]
    response = create(lab, n_trials=5, parallelism=1, pruner="median", sampler="random", warm_start=order, queue="cpu",
                      config={"optimizer": "adam", "batch_size": 64, "epochs": 3, "seed": 0},
                      search_space={"lr": {"type": "float", "low": 1e-6, "high": 0.05, "log": True}})
    assert response.status_code == 201, response.json()
    sweep_id = response.json()["id"]
    done = wait_sweep(lab, sweep_id, timeout_s=420)
    assert done["status"] == "finished" and done["end_reason"] == "all 5 trials ran", done
    trials = {trial["number"]: trial for trial in done["trials"]}
    assert len(trials) == 5 and all(trial["run"] for trial in trials.values())
    assert [trials[n]["state"] for n in (0, 1, 2)] == ["complete"] * 3
    pruned = trials[3]
    assert pruned["state"] == "pruned" and pruned["run_status"] == "pruned"
    why = pruned["pruned_why"]
    assert why["rule"] == "median" and why["step"] == 2 and why["compared_with"] == 3
    assert why["value"] < why["threshold"] and "below the median" in why["text"]
    assert list(pruned["intermediate"]) == ["1", "2"], "stopped at the end of the judged epoch"
    run = Run.objects.get(id=pruned["run"])
    assert run.status == "pruned" and "below the median" in run.error and not run.summary.get("test_accuracy")
    best = done["best"]
    assert best["value"] == max(trial["value"] for trial in trials.values() if trial["state"] == "complete")
    assert Run.objects.filter(sweep_id=sweep_id, status__in=("queued", "starting", "running")).count() == 0
    history = lab["client"].get(f"/api/sweeps/{sweep_id}/charts/history/").json()
    assert history["data"] and history["layout"]
    assert "empty" in lab["client"].get(f"/api/sweeps/{sweep_id}/charts/pareto/").json()
    assert lab["client"].get(f"/api/sweeps/{sweep_id}/charts/banana/").status_code == 400
    promoted = lab["client"].post(f"/api/sweeps/{sweep_id}/promote/", {"epochs": 6}, format="json")
    assert promoted.status_code == 201, promoted.json()
    assert promoted.json()["config"]["epochs"] == 6 and promoted.json()["config"]["lr"] == best["params"]["lr"]
    assert promoted.json()["kind"] == "run" and promoted.json()["sweep"] is None


@pytest.mark.usefixtures("celery_worker_process")
def test_killing_the_controller_mid_sweep_loses_and_duplicates_no_trial(lab, django_db_blocker, tmp_path):
    with django_db_blocker.unblock():
        controller = start_worker(queues="control", name="control-a", log=tmp_path / "a.log")
    try:
        response = create(lab, n_trials=3, parallelism=2, queue="cpu", config={"optimizer": "adam", "batch_size": 64,
                                                                  "epochs": 2, "seed": 0})
        sweep_id = response.json()["id"]
        wait_until(lambda: Run.objects.filter(sweep_id=sweep_id).count() >= 2, timeout_s=60, message="trials")
    finally:
        stop_worker(controller, signal.SIGKILL)
    sweep = Sweep.objects.get(id=sweep_id)
    study = optuna.load_study(study_name=sweep.study_name, storage=studies.storage())
    study.ask(studies.distributions(sweep.search_space))  # and one more handed out as it died
    with django_db_blocker.unblock():
        controller = start_worker(queues="control", name="control-b", log=tmp_path / "b.log")
    try:
        done = wait_sweep(lab, sweep_id, timeout_s=300)
    finally:
        stop_worker(controller)
    numbers = [trial["number"] for trial in done["trials"]]
    runs = list(Run.objects.filter(sweep_id=sweep_id).values_list("trial_number", flat=True))
    assert done["status"] == "finished" and sorted(numbers) == list(range(3)), done["trials"]
    assert sorted(runs) == sorted(numbers) and len(set(runs)) == len(runs) == 3
    assert all(trial["state"] == "complete" for trial in done["trials"]), done["trials"]


def test_a_kick_that_finds_the_lock_held_steps_again_once_the_lock_is_free(lab, django_db_blocker, tmp_path):
    """A controller killed mid-step leaves its lock until it expires; the kicks that came meanwhile are not
    lost: the first that finds the lock held asks for one more step a few seconds later (only one waits)."""
    import time

    from trainer_app.services.sweeps import BUSY_RETRY_SECONDS
    from trainer_app.streams import redis_client

    redis = redis_client()
    sweep_id = create(lab, n_trials=2, parallelism=2).json()["id"]
    redis.delete("control")  # its first kick is lost (no control worker ran yet): only the retry can start it
    held_until = time.monotonic() + 7  # longer than one retry's wait: the retry finds it held again
    redis.set(f"trainyard:sweep:{sweep_id}:controller", "a-killed-controller", px=7000)
    assert sweep_step(sweep_id=sweep_id) == "busy" and sweep_step(sweep_id=sweep_id) == "busy"
    assert redis.llen("control") == 1, "one retry for both busy steps"
    assert not Run.objects.filter(sweep_id=sweep_id).exists()
    with django_db_blocker.unblock():
        controller = start_worker(queues="control", name="control-retry", log=tmp_path / "control.log")
    try:
        wait_until(lambda: Run.objects.filter(sweep_id=sweep_id).count() == 2, timeout_s=60,
                   message=f"the trials, launched by the step after the lock expired (retry {BUSY_RETRY_SECONDS} s)")
        assert time.monotonic() >= held_until
        assert lab["client"].post(f"/api/sweeps/{sweep_id}/stop/").json()["status"] == "stopped"
    finally:
        stop_worker(controller)


@pytest.mark.usefixtures("celery_worker_process")
def test_pause_resume_parallelism_stop_and_nothing_left_queued(lab, control_worker):
    response = create(lab, n_trials=8, parallelism=2, queue="cpu", config={"optimizer": "adam", "batch_size": 64, "epochs": 20,
                                                               "seed": 0})
    sweep_id = response.json()["id"]
    client = lab["client"]
    wait_until(lambda: Run.objects.filter(sweep_id=sweep_id).count() == 2, timeout_s=60, message="2 trials")
    paused = client.post(f"/api/sweeps/{sweep_id}/pause/").json()
    assert paused["status"] == "paused"
    assert client.post(f"/api/sweeps/{sweep_id}/pause/").status_code == 400
    assert client.patch(f"/api/sweeps/{sweep_id}/", {"parallelism": 3}, format="json").json()["parallelism"] == 3
    assert client.patch(f"/api/sweeps/{sweep_id}/", {"parallelism": 0}, format="json").status_code == 400
    assert client.patch(f"/api/sweeps/{sweep_id}/", {"n_trials": 3}, format="json").status_code == 400
    sweep_step(sweep_id=sweep_id)
    assert Run.objects.filter(sweep_id=sweep_id).count() == 2, "paused: nothing new starts"
    assert client.post(f"/api/sweeps/{sweep_id}/resume/").json()["status"] == "running"
    wait_until(lambda: Run.objects.filter(sweep_id=sweep_id).count() == 3, timeout_s=60, message="a third trial")
    running = wait_until(lambda: Run.objects.filter(sweep_id=sweep_id, status="running").first(), timeout_s=120,
                         message="a running trial")
    stopped_trial = client.post(f"/api/sweeps/{sweep_id}/trials/{running.trial_number}/stop/")
    assert stopped_trial.status_code == 200
    stopped = client.post(f"/api/sweeps/{sweep_id}/stop/").json()
    assert stopped["status"] == "stopped" and stopped["end_reason"] == "stopped by a user"
    wait_until(lambda: not Run.objects.filter(sweep_id=sweep_id, status__in=("queued", "starting", "running"))
               .exists(), timeout_s=120, message="every trial run to stop")
    wait_until(lambda: all(t["state"] != "running" for t in client.get(f"/api/sweeps/{sweep_id}/").json()["trials"]),
               timeout_s=30, message="every trial recorded")
    trials = client.get(f"/api/sweeps/{sweep_id}/").json()["trials"]
    assert next(t for t in trials if t["number"] == running.trial_number)["stopped_by_user"]


# --- budgets, targets and retries, stepped by hand ------------------------------------------------------------

def _finish_run(run: Run, status: str, *, error: str = "", val_accuracy: float | None = None) -> None:
    """What a trial's supervisor records when its run ends (the persister's per-metric summary included)."""
    from trainer_app.models import RunMetric

    if val_accuracy is not None:
        RunMetric.objects.create_for(run, name="val_accuracy",
                                 last=val_accuracy, last_step=10, min=val_accuracy / 2, max=val_accuracy, count=3)
    Run.objects.filter(id=run.id).update(status=status, error=error)


def _trials(lab, sweep_id):
    return {trial["number"]: trial for trial in lab["client"].get(f"/api/sweeps/{sweep_id}/").json()["trials"]}


def test_a_target_value_ends_the_sweep_and_nothing_of_it_stays_queued(lab):
    sweep_id = create(lab, n_trials=10, parallelism=3, target_value=0.9).json()["id"]
    sweep_step(sweep_id=sweep_id)
    runs = list(Run.objects.filter(sweep_id=sweep_id).order_by("trial_number"))
    assert len(runs) == 3 and all(run.status == "queued" for run in runs)
    _finish_run(runs[0], "succeeded", val_accuracy=0.93)
    sweep_step(sweep_id=sweep_id)
    sweep = Sweep.objects.get(id=sweep_id)
    assert sweep.status == "finished" and sweep.end_reason == "a trial reached the target 0.9"
    assert sweep.best["value"] == 0.93 and sweep.best["run"] == runs[0].id
    assert set(Run.objects.filter(sweep_id=sweep_id).values_list("status", flat=True)) == {"succeeded", "cancelled"}
    states = {number: trial["state"] for number, trial in _trials(lab, sweep_id).items()}
    assert states == {0: "complete", 1: "fail", 2: "fail"} and len(Run.objects.filter(sweep_id=sweep_id)) == 3


def test_the_time_budget_ends_the_sweep(lab):
    import time

    sweep_id = create(lab, n_trials=10, parallelism=2, timeout_s=1).json()["id"]
    sweep_step(sweep_id=sweep_id)
    time.sleep(1.2)
    sweep_step(sweep_id=sweep_id)
    sweep = Sweep.objects.get(id=sweep_id)
    assert sweep.status == "finished" and "time budget of 1 s" in sweep.end_reason
    assert not Run.objects.filter(sweep_id=sweep_id, status="queued").exists()


def test_a_trial_whose_run_was_lost_for_good_is_retried_with_the_same_parameters_at_most_max_retries(lab):
    sweep_id = create(lab, n_trials=1, parallelism=1, max_retries=1).json()["id"]
    sweep_step(sweep_id=sweep_id)
    first = Run.objects.get(sweep_id=sweep_id)
    _finish_run(first, "failed", error="worker lost 3 times")
    sweep_step(sweep_id=sweep_id)
    trials = _trials(lab, sweep_id)
    assert trials[0]["state"] == "fail" and trials[0]["retried"]
    assert trials[1]["state"] == "running" and trials[1]["source"] == "retry" and trials[1]["retry_of"] == 0
    assert trials[1]["params"] == trials[0]["params"]
    second = Run.objects.get(sweep_id=sweep_id, trial_number=1)
    assert second.config["lr"] == first.config["lr"]
    _finish_run(second, "failed", error="worker lost 3 times")
    sweep_step(sweep_id=sweep_id)
    sweep = Sweep.objects.get(id=sweep_id)
    assert len(_trials(lab, sweep_id)) == 2, "max_retries 1: no third attempt"
    assert sweep.status == "finished" and sweep.counts == {"fail": 2}
    failed = _trials(lab, sweep_id)[1]
    assert failed["error"] == "worker lost 3 times"


def test_a_run_that_crashed_fails_its_trial_with_the_error_and_is_not_retried(lab):
    sweep_id = create(lab, n_trials=2, parallelism=1).json()["id"]
    sweep_step(sweep_id=sweep_id)
    _finish_run(Run.objects.get(sweep_id=sweep_id), "failed", error="RuntimeError: boom")
    sweep_step(sweep_id=sweep_id)
    trials = _trials(lab, sweep_id)
    assert trials[0]["state"] == "fail" and trials[0]["error"] == "RuntimeError: boom" and not trials[0]["retried"]
    assert trials[1]["state"] == "running" and trials[1]["source"] == "search"


@pytest.mark.sqlite_ok
def test_three_trial_supervisors_report_at_once_without_database_is_locked(lab, tmp_path):
    """Three processes judge their trials' epochs at once (report + should_prune + attributes) while this one
    steps the controller and reads the sweep: on SQLite (make test-sqlite) as on PostgreSQL."""
    import subprocess
    import sys

    from django.db import connection

    from tests.conftest import REPO, child_environment

    sweep_id = create(lab, n_trials=3, parallelism=3, pruner="median").json()["id"]
    sweep_step(sweep_id=sweep_id)
    runs = list(Run.objects.filter(sweep_id=sweep_id).values_list("id", flat=True))
    assert len(runs) == 3
    script = (
        "import sys, django; django.setup()\n"
        "from trainer_app.models import Run\n"
        "from trainer_app.services.sweeps import trial_judge\n"
        "run = Run.objects.select_related('sweep').get(id=int(sys.argv[1]))\n"
        "for epoch in range(1, 31):\n"
        "    trial_judge(run=run, epoch=epoch, values={'val_accuracy': 0.5 + epoch / 100})\n"
        "print('ok')\n")
    environment = child_environment(DJANGO_SETTINGS_MODULE="config.settings")
    processes = [subprocess.Popen([sys.executable, "-c", script, str(run_id)], cwd=REPO, env=environment,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for run_id in runs]
    while any(process.poll() is None for process in processes):
        sweep_step(sweep_id=sweep_id)
        lab["client"].get(f"/api/sweeps/{sweep_id}/")
    outputs = [process.communicate()[0] for process in processes]
    assert all(process.returncode == 0 for process in processes), outputs
    assert not any("locked" in output for output in outputs), outputs
    trials = _trials(lab, sweep_id)
    assert [len(trials[number]["intermediate"]) for number in range(3)] == [30, 30, 30], connection.vendor


def test_two_objectives_give_a_pareto_front_of_accuracy_against_model_size(lab):
    objectives = [{"metric": "val_accuracy", "direction": "maximize"}, {"metric": "parameters", "direction": "minimize"}]
    response = create(lab, objective=None, objectives=objectives, sampler="nsga2", n_trials=2, parallelism=2,
                      search_space={"model.width": {"type": "categorical", "choices": [8, 64]}},
                      warm_start=[{"model.width": 8}, {"model.width": 64}])
    assert response.status_code == 201, response.json()
    sweep_id = response.json()["id"]
    assert not any("NSGA-II" in warning for warning in response.json()["warnings"]), "two objectives: its use"
    sweep_step(sweep_id=sweep_id)
    small, large = Run.objects.filter(sweep_id=sweep_id).order_by("trial_number")
    assert small.model_spec["options"]["hidden"] == [8] and large.model_spec["options"]["hidden"] == [64]
    _finish_run(small, "succeeded", val_accuracy=0.90)
    _finish_run(large, "succeeded", val_accuracy=0.97)
    sweep_step(sweep_id=sweep_id)
    detail = lab["client"].get(f"/api/sweeps/{sweep_id}/").json()
    assert detail["status"] == "finished"
    values = {trial["number"]: trial["values"] for trial in detail["trials"]}
    assert values[0][0] == 0.90 and values[1][0] == 0.97 and values[0][1] < values[1][1], values
    assert sorted(point["number"] for point in detail["best"]["pareto"]) == [0, 1], "neither dominates the other"
    pareto = lab["client"].get(f"/api/sweeps/{sweep_id}/charts/pareto/").json()
    assert pareto["data"] and "empty" not in pareto
    promote = lab["client"].post(f"/api/sweeps/{sweep_id}/promote/", {}, format="json")
    assert promote.status_code == 400 and "Pareto front" in str(promote.json())
    assert lab["client"].post(f"/api/sweeps/{sweep_id}/promote/", {"trial": 1}, format="json").status_code == 201


def test_a_sweep_on_a_queue_the_members_role_may_not_use_is_refused_up_front(lab):
    Queue.objects.create(name="leads-only", allowed_roles=["lead", "admin"])
    response = create(lab, queue="leads-only")
    assert response.status_code == 400 and "'leads-only' is for lead and admin members only" in \
        response.json()["queue"][0]
    assert not Sweep.objects.exists()
