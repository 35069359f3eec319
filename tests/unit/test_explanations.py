"""Every concept of the ontology is explained in four short parts, and every form option points at one."""
import re

import pytest

from kg_app.concepts import usage_summary
from kg_app.explanations import EXPLANATIONS, PARTS
from kg_app.ontology import (CONCEPT_SLUGS, CONCEPTS, LAYER_CONCEPTS, OPTIMIZER_CONCEPTS, PRESET_CONCEPTS,
                             PRUNER_OPTION_CONCEPTS, SAMPLER_CONCEPTS, SCHEDULE_CONCEPTS, SETTING_CONCEPTS,
                             TASK_CONCEPTS, run_applied_concepts, run_concepts, setting_concept)


@pytest.mark.parametrize("concept", CONCEPTS, ids=lambda concept: concept.slug)
def test_every_builtin_concept_has_all_four_parts(concept):
    explanation = EXPLANATIONS.get(concept.slug)
    assert explanation is not None, f"{concept.slug} has no explanation in kg_app/explanations.py"
    assert set(explanation) == set(PARTS)
    for part in PARTS:
        text = explanation[part].strip()
        assert len(text) >= 20, f"{concept.slug}.{part} is too short to help"
        assert len(re.findall(r"[.!?](?:\s|$)", text)) <= 4 and len(text) <= 600, f"{concept.slug}.{part} is too long"


def test_no_explanation_is_left_without_its_concept():
    assert set(EXPLANATIONS) <= CONCEPT_SLUGS


def test_the_ontology_is_closed_under_is_a_and_requires():
    for concept in CONCEPTS:
        assert set(concept.is_a) | set(concept.requires) <= CONCEPT_SLUGS, concept.slug


@pytest.mark.parametrize("mapping", [OPTIMIZER_CONCEPTS, SAMPLER_CONCEPTS, PRUNER_OPTION_CONCEPTS, SCHEDULE_CONCEPTS,
                                     TASK_CONCEPTS, PRESET_CONCEPTS, LAYER_CONCEPTS, SETTING_CONCEPTS])
def test_every_form_option_points_at_an_explained_concept(mapping):
    assert set(mapping.values()) <= set(EXPLANATIONS)


def test_every_option_of_the_contract_and_the_engine_has_a_concept():
    from trainer_app import studies
    from trainer_app.engine.design import LAYER_PARAMETERS, PRESETS

    assert set(studies.SAMPLERS) == set(SAMPLER_CONCEPTS) and set(studies.PRUNERS) == set(PRUNER_OPTION_CONCEPTS)
    assert set(PRESETS) <= set(PRESET_CONCEPTS) and set(LAYER_PARAMETERS) <= set(LAYER_CONCEPTS)
    assert {"sgd", "adam", "adamw", "adagrad", "rmsprop"} == set(OPTIMIZER_CONCEPTS)


@pytest.mark.parametrize("name, slug", [
    ("lr", "learning-rate"), ("weight_decay", "weight-decay"), ("amp", "mixed-precision-training"),
    ("nproc_per_node", "ddp"), ("freeze", "freezing-layers"), ("schedule.warmup_epochs", "learning-rate-warmup"),
    ("schedule.gamma", "step-decay"), ("augmentation.hflip", "augmentation"), ("model.dropout", "dropout"),
    ("model.depth", "architectures"), ("name", None),
])
def test_a_setting_names_its_concept(name, slug):
    assert setting_concept(name) == slug


def test_a_run_applies_the_regularisation_and_precision_it_switched_on():
    config = {"optimizer": "sgd", "momentum": 0.9, "weight_decay": 5e-4, "grad_clip": 1.0, "label_smoothing": 0.1,
              "amp": "bf16", "early_stopping": {"metric": "val_loss"}, "deterministic": True,
              "schedule": {"type": "cosine", "warmup_epochs": 1}}
    slugs = run_concepts(config=config, resources={}, family="CNN", fine_tuned=False, frozen=False)
    assert {"sgd", "momentum", "weight-decay", "gradient-clipping", "label-smoothing", "mixed-precision-training",
            "early-stopping", "reproducibility", "learning-rate-warmup", "learning-rate-schedule"} <= set(slugs)
    assert "cosine-annealing" not in slugs  # the graph links the broader schedule concept only
    detailed = run_applied_concepts(config=config, resources={}, family="CNN", fine_tuned=False, frozen=False)
    assert {"cosine-annealing", "learning-rate", "batch-size", "epochs"} <= set(detailed)


def test_defaults_apply_none_of_the_optional_settings():
    config = {"optimizer": "adam", "momentum": 0.9, "weight_decay": 0.0, "grad_clip": None, "label_smoothing": 0.0,
              "amp": "none", "early_stopping": None, "deterministic": False, "schedule": {"type": "none"}}
    assert run_concepts(config=config, resources={"nproc_per_node": 1}, family="MLP", fine_tuned=False,
                        frozen=False) == ["adam", "mlp"]


def test_the_usage_line_counts_successes_and_takes_the_median_of_the_common_metric():
    runs = [{"status": "succeeded", "metric": "test_accuracy", "value": value} for value in (0.9, 0.94, 0.96)]
    runs += [{"status": "failed", "metric": None, "value": None}, {"status": "succeeded", "metric": "test_r2",
                                                                   "value": 0.5}]
    summary = usage_summary(runs)
    assert summary["text"] == "5 runs, 4 succeeded, median test accuracy 0.94"
    assert usage_summary([])["text"] == "0 runs, 0 succeeded"
