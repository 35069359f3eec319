"""Concepts: the API (anyone signed in reads, site admins edit), escaping of edited texts, the concept page
with the runs that applied it, and the explanations next to every option of the four forms."""
import html
import json

import pytest
from django.urls import reverse

from kg_app.explanations import EXPLANATIONS
from kg_app.models import ConceptExplanation
from kg_app.ontology import CONCEPT_SLUGS
from trainer_app.models import Queue, Role, RunStatus, Sweep

SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def admin(user_factory):
    return user_factory("site-admin", staff=True)


# --- the API ---------------------------------------------------------------------------------------------------

def test_anyone_signed_in_lists_every_concept_with_its_explanation_and_page(api_client, user_factory):
    assert api_client.get("/api/concepts/").status_code in (401, 403)
    api_client.force_authenticate(user_factory("reader"))
    concepts = api_client.get("/api/concepts/").json()
    by_slug = {concept["slug"]: concept for concept in concepts}
    assert set(by_slug) == CONCEPT_SLUGS
    weight_decay = by_slug["weight-decay"]
    assert weight_decay["name"] == "Weight decay" and weight_decay["url"] == "/concepts/weight-decay/"
    assert weight_decay["explanation"] == EXPLANATIONS["weight-decay"] and weight_decay["is_a"] == ["regularisation"]
    assert "weight-decay" in by_slug["regularisation"]["narrower"]
    detail = api_client.get("/api/concepts/adamw/").json()
    assert detail["explanation"]["typical"] == EXPLANATIONS["adamw"]["typical"] and not detail["edited"]
    assert api_client.get("/api/concepts/no-such-thing/").status_code == 404


def test_only_site_admins_edit_an_explanation_and_the_text_comes_back_unchanged(api_client, user_factory, admin):
    api_client.force_authenticate(user_factory("analyst"))
    refused = api_client.patch("/api/concepts/weight-decay/", {"what": "mine"}, format="json")
    assert refused.status_code == 403 and "site admins" in refused.json()["detail"]
    api_client.force_authenticate(admin)
    answer = api_client.patch("/api/concepts/weight-decay/", {"what": SCRIPT, "pitfalls": "Too much underfits."},
                              format="json")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["explanation"]["what"] == SCRIPT and body["explanation"]["pitfalls"] == "Too much underfits."
    assert body["explanation"]["when"] == EXPLANATIONS["weight-decay"]["when"]  # parts not sent stay built-in
    assert body["edited"] and body["updated_by"] == "site-admin"
    assert api_client.get("/api/concepts/weight-decay/").json()["explanation"]["what"] == SCRIPT
    assert ConceptExplanation.objects.get(slug="weight-decay").what == SCRIPT


def test_an_edit_is_checked_and_emptying_every_part_restores_the_builtin_text(api_client, admin):
    api_client.force_authenticate(admin)
    assert api_client.patch("/api/concepts/adam/", {}, format="json").status_code == 400
    too_long = api_client.patch("/api/concepts/adam/", {"when": "x" * 2001}, format="json")
    assert too_long.status_code == 400 and "when" in too_long.json()
    assert api_client.patch("/api/concepts/nothing-here/", {"what": "x"}, format="json").status_code == 404
    api_client.patch("/api/concepts/adam/", {"what": "Adam, said briefly."}, format="json")
    restored = api_client.patch("/api/concepts/adam/", {"what": ""}, format="json").json()
    assert restored["explanation"]["what"] == EXPLANATIONS["adam"]["what"] and not restored["edited"]
    assert not ConceptExplanation.objects.filter(slug="adam").exists()


def test_a_concept_an_admin_added_can_be_explained_too(api_client, admin):
    from kg_app.models import Concept

    Concept.objects.create(slug="focal-loss", name="Focal loss", description="Down-weights easy examples.",
                           is_a="regularisation")
    api_client.force_authenticate(admin)
    answer = api_client.patch("/api/concepts/focal-loss/", {"what": "A loss for unbalanced classes."}, format="json")
    assert answer.status_code == 200 and not answer.json()["builtin"]
    assert answer.json()["explanation"] == {"what": "A loss for unbalanced classes.", "when": "", "typical": "",
                                            "pitfalls": ""}
    assert "focal-loss" in api_client.get("/api/concepts/regularisation/").json()["narrower"]


# --- the page ----------------------------------------------------------------------------------------------------

def test_an_edited_explanation_is_escaped_on_the_page_and_in_the_forms(client, api_client, admin, run_factory):
    api_client.force_authenticate(admin)
    api_client.patch("/api/concepts/weight-decay/", {"what": SCRIPT}, format="json")
    client.force_login(run_factory.owner)
    page = client.get(reverse("concept-detail", args=["weight-decay"])).content.decode()
    assert SCRIPT not in page and html.escape(SCRIPT) in page
    launch = client.get(reverse("run-launch")).content.decode()
    assert SCRIPT not in launch and "&lt;script&gt;alert(1)&lt;/script&gt;" in launch  # the ⓘ's title
    assert "\\u003Cscript\\u003Ealert(1)\\u003C/script\\u003E" in launch  # the JSON for options drawn by JS


def test_site_admins_edit_on_the_concept_page_and_others_are_refused(client, admin, user_factory):
    page_url = reverse("concept-detail", args=["dropout"])
    client.force_login(user_factory("analyst"))
    assert 'data-testid="explanation-edit"' not in client.get(page_url).content.decode()
    assert client.post(page_url, {"what": "mine"}).status_code == 403
    client.force_login(admin)
    assert 'data-testid="explanation-edit"' in client.get(page_url).content.decode()
    saved = client.post(page_url, {"what": f"Dropout {SCRIPT}", "when": "", "typical": "", "pitfalls": ""})
    assert saved.status_code == 302
    page = client.get(saved["Location"]).content.decode()
    assert 'data-testid="explanation-saved"' in page and html.escape(f"Dropout {SCRIPT}") in page
    assert html.escape(EXPLANATIONS["dropout"]["when"]) in page
    refused = client.post(page_url, {"what": "x" * 2001})
    assert refused.status_code == 400 and "Keep it under 2000 characters" in refused.content.decode()


def test_the_concept_page_lists_the_runs_that_applied_it_with_how_they_fared(client, run_factory, user_factory,
                                                                             project_factory):
    good = run_factory(name="wd-good", status=RunStatus.SUCCEEDED, summary={"test_accuracy": 0.96},
                       config={"optimizer": "adamw", "weight_decay": 0.05})
    run_factory(name="wd-ok", status=RunStatus.SUCCEEDED, summary={"values": {"test_accuracy": 0.94}},
                config={"optimizer": "adamw", "weight_decay": 0.01})
    run_factory(name="wd-failed", status=RunStatus.FAILED, config={"optimizer": "adamw", "weight_decay": 0.1})
    run_factory(name="no-decay", status=RunStatus.SUCCEEDED, summary={"test_accuracy": 0.5},
                config={"optimizer": "adam", "weight_decay": 0.0})
    stranger = user_factory("stranger")
    other = project_factory("elsewhere", (stranger, Role.ANALYST))
    run_factory(name="not-yours", project=other, config={"weight_decay": 0.2})
    client.force_login(run_factory.owner)
    page = client.get(reverse("concept-detail", args=["weight-decay"])).content.decode()
    assert 'data-testid="concept-aggregate"' in page and "3 runs, 2 succeeded, median test accuracy 0.95" in page
    assert "wd-good" in page and "wd-failed" in page and "no-decay" not in page and "not-yours" not in page
    assert f'href="/runs/{good.pk}/"' in page and "test_accuracy <strong>0.9600</strong>" in page
    assert "<code>0.05</code>" in page  # the setting it was applied with
    assert 'href="/graph/?node=concept%3Aweight-decay"' in page
    assert 'href="/concepts/regularisation/"' in page  # the broader concept
    # every run sets a learning rate: its page lists them all, each with its value
    lr_page = client.get(reverse("concept-detail", args=["learning-rate"])).content.decode()
    assert "4 runs, 3 succeeded" in lr_page
    # a broader concept counts the runs of the narrower ones: every optimizer is model optimisation
    optimisation = client.get(reverse("concept-detail", args=["model-optimisation"])).content.decode()
    assert "no-decay" in optimisation and "<code>adam</code>" in optimisation and "<code>adamw</code>" in optimisation


def test_the_concept_page_lists_sweeps_that_applied_or_searched_it(client, run_factory):
    queue = Queue.objects.get(name="cpu")
    sweep = Sweep.objects.create(project=run_factory.project, dataset=run_factory().dataset,
                                 design=run_factory().design, queue=queue, study_name="concept-test-sweep",
                                 name="lr search", sampler="tpe", pruner="asha",
                                 search_space={"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True}},
                                 objectives=[{"metric": "val_accuracy", "direction": "maximize"}],
                                 best={"value": 0.91})
    client.force_login(run_factory.owner)
    for slug in ("asha", "tpe", "learning-rate"):
        page = client.get(reverse("concept-detail", args=[slug])).content.decode()
        assert 'data-testid="concept-sweep-table"' in page and f'href="/sweeps/{sweep.pk}/"' in page, slug
    assert 'data-testid="concept-sweep-table"' not in client.get(
        reverse("concept-detail", args=["hyperband"])).content.decode()


def test_a_concept_no_run_applied_gets_a_helpful_empty_state(client, user_factory):
    client.force_login(user_factory("newcomer"))
    page = client.get(reverse("concept-detail", args=["label-smoothing"])).content.decode()
    assert 'data-testid="concept-runs-empty"' in page and "No run of your projects has applied" in page
    assert html.escape(EXPLANATIONS["label-smoothing"]["pitfalls"]) in page
    assert client.get(reverse("concept-detail", args=["nope"])).status_code == 404


def test_the_concept_list_shows_the_ontology_as_a_tree(client, user_factory):
    client.force_login(user_factory("reader"))
    page = client.get(reverse("concepts")).content.decode()
    assert all(f'href="/concepts/{slug}/"' in page for slug in CONCEPT_SLUGS)


# --- the forms ----------------------------------------------------------------------------------------------------

def explained(page: str, slug: str) -> bool:
    """The page has an ⓘ for the concept, linking to its page, with its explanation as the hover text."""
    return (f'<a class="explain" href="/concepts/{slug}/" data-concept="{slug}" title="' in page
            and html.escape(EXPLANATIONS[slug]["what"], quote=True) in page)


def form_page(client, owner, name: str) -> str:
    client.force_login(owner)
    answer = client.get(reverse(name))
    assert answer.status_code == 200
    page = answer.content.decode()
    assert 'id="concept-explanations"' in page and "trainyard/js/explain.js" in page
    return page


def test_every_option_of_the_launch_form_is_explained(client, run_factory):
    from frontend.views.launch import ADVANCED, ESSENTIALS
    from kg_app.ontology import setting_concept

    page = form_page(client, run_factory.owner, "run-launch")
    fields = ESSENTIALS + [name for _title, names in ADVANCED for name in names]
    for name in fields:
        assert explained(page, setting_concept(name)), name
    for slug in ("weight-decay", "mixed-precision-training", "ddp", "freezing-layers", "augmentation",
                 "learning-rate-schedule", "early-stopping", "architectures"):
        assert explained(page, slug), slug
    # each optimizer, schedule and model option has its own concept, whose explanation explain.js shows
    assert 'data-option-concepts="{&quot;sgd&quot;: &quot;sgd&quot;' in page
    assert "&quot;onecycle&quot;: &quot;one-cycle&quot;" in page
    payload = page.split('<script id="concept-explanations" type="application/json">')[1].split("</script>")[0]
    concepts = json.loads(payload)
    assert concepts["adam"]["what"] == EXPLANATIONS["adam"]["what"] and concepts["adam"]["url"] == "/concepts/adam/"
    assert "&quot;preset:resnet18&quot;: &quot;resnet&quot;" in page  # the model select


def test_every_option_of_the_sweep_form_is_explained(client, run_factory):
    from trainer_app import studies

    run_factory()
    page = form_page(client, run_factory.owner, "sweep-new")
    for slug in ("search-space", "objective-metric", "hyperparameter-tuning", "early-stopping-of-trials",
                 "trial-budget", "parallel-trials", "job-queue", "warm-starting", "learning-rate", "batch-size",
                 "model-optimisation"):
        assert explained(page, slug), slug
    from kg_app.ontology import PRUNER_OPTION_CONCEPTS, SAMPLER_CONCEPTS

    for name in studies.SAMPLERS:
        assert html.escape(EXPLANATIONS[SAMPLER_CONCEPTS[name]]["what"], quote=True) in page, name
    for name in studies.PRUNERS:
        assert html.escape(EXPLANATIONS[PRUNER_OPTION_CONCEPTS[name]]["what"], quote=True) in page, name
    # the search-space rows are drawn by sweep_space.js: each parameter's concept comes with the form's data
    assert '"parameter_concepts": {' in page and '"lr": "learning-rate"' in page
    assert '"weight_decay": "weight-decay"' in page and '"augmentation.hflip": "augmentation"' in page
    assert '"sampler_concepts": {"tpe": "tpe"' in page


def test_the_sweep_view_takes_sampler_and_pruner_help_from_the_concepts(client, run_factory, api_client, user_factory):
    api_client.force_authenticate(user_factory("root", staff=True))
    api_client.patch("/api/concepts/grid-search/", {"what": "Every combination, said by our admin."}, format="json")
    run_factory()
    page = form_page(client, run_factory.owner, "sweep-new")
    assert 'title="Grid search: Every combination, said by our admin.' in page


def test_every_option_of_the_model_designer_is_explained(client, run_factory):
    run_factory()
    page = form_page(client, run_factory.owner, "models")
    assert explained(page, "architectures")
    assert 'data-option-concepts-for="select.layer-type"' in page  # the rows' type selects, drawn by designer.js
    assert "&quot;Dropout&quot;: &quot;dropout&quot;" in page
    assert "&quot;BatchNorm&quot;: &quot;batch-normalisation&quot;" in page
    assert "&quot;small_cnn&quot;: &quot;cnn&quot;" in page  # the preset select
    assert '"dropout": {"name": "Dropout"' in page  # the hover texts for them


def test_every_option_of_the_dataset_upload_is_explained(client, run_factory):
    page = form_page(client, run_factory.owner, "datasets")
    for slug in ("learning-task", "features-and-target", "file-parsing", "missing-values", "image-size", "splitting"):
        assert explained(page, slug), slug
    assert "&quot;regression&quot;: &quot;regression&quot;" in page  # the task select's options
