"""Search spaces, grids, samplers, design spaces and prune reasons (no services: an in-memory Optuna study)."""
import math

import optuna
import pytest

from trainer_app import studies
from trainer_app.services.sweeps import trial_settings


def test_a_search_space_is_normalised_with_types_steps_and_warnings():
    space, warnings = studies.normalise_search_space({
        "lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
        "batch_size": {"type": "int", "low": 16, "high": 128, "step": 16},
        "optimizer": {"type": "categorical", "choices": ["adam"]},
        "weight_decay": {"type": "float", "low": 0.01, "high": 0.01},
    })
    assert space["lr"] == {"type": "float", "low": 1e-4, "high": 0.1, "log": True}
    assert space["batch_size"] == {"type": "int", "low": 16, "high": 128, "log": False, "step": 16}
    assert len(warnings) == 2 and "one choice" in warnings[0] and "low = high" in warnings[1]
    distributions = studies.distributions(space)
    assert distributions["lr"].log and distributions["batch_size"].step == 16


@pytest.mark.parametrize("raw, words", [
    (None, "empty"), ({}, "empty"), ({"lr": 3}, "give an object"),
    ({"lr": {"type": "float", "low": 1, "high": 0}}, "low (1) is greater than high (0)"),
    ({"lr": {"type": "float", "low": -1, "high": 1, "log": True}}, "log scale needs low > 0"),
    ({"lr": {"type": "float", "low": 0.1, "high": 1, "log": True, "step": 0.1}}, "cannot have a step"),
    ({"lr": {"type": "float", "low": 0, "high": 1, "step": -0.1}}, "step must be greater than 0"),
    ({"lr": {"type": "float", "low": float("nan"), "high": 1}}, "must be a number"),
    ({"x": {"type": "categorical", "choices": []}}, "non-empty list"),
    ({"x": {"type": "categorical", "choices": [1, 1]}}, "listed twice"),
    ({"x": {"type": "categorical", "choices": [{"a": 1}]}}, "strings, numbers"),
    ({"n": {"type": "int", "low": 1, "high": 5, "step": 1.5}}, "whole-number step"),
])
def test_invalid_search_spaces_name_the_parameter_and_the_fix(raw, words):
    with pytest.raises(studies.SearchSpaceError) as error:
        studies.normalise_search_space(raw)
    assert words in str(error.value)


def test_grid_points_and_size():
    space, _ = studies.normalise_search_space({
        "lr": {"type": "float", "low": 0.01, "high": 0.05, "step": 0.01},
        "layers": {"type": "int", "low": 1, "high": 3},
        "optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
    })
    assert studies.grid_values(space)["lr"] == [0.01, 0.02, 0.03, 0.04, 0.05]
    assert studies.grid_size(space) == 5 * 3 * 2
    with pytest.raises(studies.SearchSpaceError, match="needs a step"):
        studies.grid_size({"lr": {"type": "float", "low": 0.0, "high": 1.0, "log": False}})


@pytest.mark.parametrize("sampler", studies.SAMPLERS)
def test_every_sampler_builds_and_a_rebuilt_sampler_does_not_repeat_itself(sampler):
    space, _ = studies.normalise_search_space({"lr": {"type": "float", "low": 0.001, "high": 0.1, "step": 0.001},
                                               "depth": {"type": "int", "low": 1, "high": 4}})
    study = optuna.create_study(directions=["maximize", "minimize"] if sampler == "nsga2" else ["maximize"])
    seen = set()
    for count in range(6):  # each decision in a fresh process: the sampler is rebuilt each time
        study.sampler = studies.build_sampler(sampler, space=space, seed=7, trials_so_far=count, n_trials=6)
        trial = study.ask(studies.distributions(space))
        seen.add((trial.params["lr"], trial.params["depth"]))
        study.tell(trial, [trial.params["lr"], trial.params["depth"]] if sampler == "nsga2" else trial.params["lr"])
    assert len(seen) >= 5, f"{sampler} repeated itself: {seen}"


@pytest.mark.parametrize("pruner", studies.PRUNERS)
def test_every_pruner_builds(pruner):
    assert studies.build_pruner(pruner, epochs=9) is not None


def test_design_space_parameters_become_the_model_and_the_rest_the_training_config():
    config, model = trial_settings({"epochs": 3, "schedule": {"type": "cosine"}},
                                   {"preset": "mlp", "options": {"hidden": [64, 64], "dropout": 0.1}},
                                   {"lr": 0.01, "schedule.warmup_epochs": 1.0, "model.depth": 3, "model.width": 32,
                                    "model.dropout": 0.2})
    assert config == {"epochs": 3, "lr": 0.01, "schedule": {"type": "cosine", "warmup_epochs": 1.0}}
    assert model == {"preset": "mlp", "options": {"hidden": [32, 32, 32], "dropout": 0.2}}
    _, vit = trial_settings({}, {"preset": "vit_tiny", "options": {}}, {"model.depth": 2, "model.width": 64})
    assert vit["options"] == {"depth": 2, "dim": 64}
    config, model = trial_settings({"epochs": 3}, {"preset": "mlp"}, {"lr": 0.1})
    assert model is None and config == {"epochs": 3, "lr": 0.1}


def test_the_median_reason_names_the_median_and_the_trials_compared():
    study = optuna.create_study(direction="maximize", pruner=studies.build_pruner("median", epochs=5))
    for value in (0.8, 0.9, 0.7):
        trial = study.ask()
        trial.report(value, 2)
        study.tell(trial, value)
    trial = study.ask()
    trial.report(0.1, 2)
    assert trial.should_prune()
    why = studies.prune_reason("median", study=study, trial_id=trial._trial_id, step=2, value=0.1,
                               direction="maximize")
    assert why["threshold"] == 0.8 and why["compared_with"] == 3 and why["rule"] == "median"
    assert "below the median 0.8 of 3 earlier trials" in why["text"]


def test_the_asha_reason_names_the_rung_and_the_cut_off():
    study = optuna.create_study(direction="maximize", pruner=studies.build_pruner("asha", epochs=9))
    for value in (0.9, 0.8, 0.85, 0.7, 0.75):
        trial = study.ask()
        trial.report(value, 1)
        trial.should_prune()
        study.tell(trial, value)
    trial = study.ask()
    trial.report(0.2, 1)
    assert trial.should_prune()
    why = studies.prune_reason("asha", study=study, trial_id=trial._trial_id, step=1, value=0.2, direction="maximize")
    assert why["rung"] == 0 and why["compared_with"] == 6 and math.isclose(why["threshold"], 0.85)
    assert "rung 0" in why["text"] and "top 1/3 of 6 trials (cut-off 0.85)" in why["text"]


def test_the_storage_url_follows_djangos_database():
    assert studies.storage_url({"ENGINE": "django.db.backends.sqlite3", "NAME": "/tmp/x.sqlite3"}) == \
        "sqlite:////tmp/x.sqlite3"
    assert studies.storage_url({"ENGINE": "django.db.backends.postgresql", "NAME": "db", "USER": "u",
                                "PASSWORD": "p@ss", "HOST": "h", "PORT": 5433}) == \
        "postgresql+psycopg://u:p%40ss@h:5433/db"


def test_a_trial_with_the_parameters_of_a_finished_one_reuses_its_result():
    study = optuna.create_study(direction="maximize")
    space = studies.distributions({"lr": {"type": "categorical", "choices": [0.1, 0.01]}})
    study.enqueue_trial({"lr": 0.1})
    study.enqueue_trial({"lr": 0.01})
    study.enqueue_trial({"lr": 0.1})
    study.enqueue_trial({"lr": 0.01})
    first = study.ask(space)
    first.report(0.8, 1)
    study.tell(first, 0.9)
    second = study.ask(space)
    second.report(0.3, 1)
    study.tell(second, state=optuna.trial.TrialState.PRUNED)
    third, fourth = study.ask(space), study.ask(space)
    assert studies.reuse_finished_twin(study, third).number == 0
    assert studies.reuse_finished_twin(study, fourth).number == 1
    trials = study.get_trials()
    assert trials[2].state == optuna.trial.TrialState.COMPLETE and trials[2].value == 0.9
    assert trials[2].user_attrs["reused_from"] == 0 and trials[2].intermediate_values == {1: 0.8}
    assert trials[3].state == optuna.trial.TrialState.PRUNED and trials[3].intermediate_values == {1: 0.3}
    fresh = study.ask({"momentum": optuna.distributions.FloatDistribution(0.1, 0.2)})
    assert studies.reuse_finished_twin(study, fresh) is None
