"""The runs list page: the API's filters and orderings (GET /api/runs/) as query parameters, paged; a bad
parameter named above the table; the table's refresh keeps the filters; other projects' runs never shown."""
import html
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from trainer_app.models import Dataset, DatasetStatus, Membership, ModelDesign, Role, Run, RunMetric, RunTag

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite_ok]


def add_metric(run, name, last, *, low=None, high=None):
    RunMetric.objects.create_for(run, name=name, last=last,
                             last_step=10, min=last if low is None else low, max=last if high is None else high)


@pytest.fixture
def lab(run_factory, user_factory, client):
    """Five runs of one project over two datasets, two models and two members; `names` maps name -> run."""
    project, owner = run_factory.project, run_factory.owner
    bea = user_factory("bea")
    Membership.objects.create(project=project, user=bea, role=Role.ANALYST)
    wine = Dataset.objects.create(project=project, name="wine", status=DatasetStatus.READY, task="classification",
                                  input_shape=[13], num_classes=3)
    wide = ModelDesign.objects.create(project=project, name="wide", spec={"preset": "mlp"})
    alpha = run_factory(name="alpha", status="succeeded", starred=True)
    beta = run_factory(name="beta", status="failed", dataset=wine, created_by=bea, notes="tried cosine\nthen step decay")
    gamma = run_factory(name="gamma", status="succeeded", design=wide)
    delta = run_factory(name="delta", status="running", step=3, total_steps=10)
    epsilon = run_factory(name="epsilon", status="succeeded", archived=True)
    add_metric(alpha, "val_accuracy", 0.90, low=0.20, high=0.91)
    add_metric(gamma, "val_accuracy", 0.95, low=0.30, high=0.96)
    add_metric(delta, "val_accuracy", 0.50, low=0.10, high=0.99)
    RunTag.objects.create(run=alpha, name="baseline")
    RunTag.objects.create(run=gamma, name="sweep-a")
    RunTag.objects.create(run=beta, name="sweep-a")
    Run.objects.filter(pk=alpha.pk).update(created_at=timezone.now() - timedelta(days=10))
    client.force_login(owner)
    names = {run.name: run for run in (alpha, beta, gamma, delta, epsilon)}
    return {"client": client, "project": project, "names": names, "wine": wine, "wide": wide}


def listed(response) -> list[str]:
    """The names of the listed runs, in order."""
    body = response.content.decode()
    ids = [int(value) for value in re.findall(r'<tr data-run="(\d+)"', body)]
    names = dict(Run.objects.filter(pk__in=ids).values_list("pk", "name"))
    return [names[run_id] for run_id in ids]


def yesterday() -> str:
    return (timezone.localdate() - timedelta(days=1)).isoformat()


@pytest.mark.parametrize(("params", "expected"), [
    ({}, ["delta", "gamma", "beta", "alpha"]),
    ({"status": "succeeded"}, ["gamma", "alpha"]),
    ({"status": "failed,running"}, ["delta", "beta"]),
    ({"dataset": "{wine}"}, ["beta"]),
    ({"model": "{wide}"}, ["gamma"]),
    ({"user": "bea"}, ["beta"]),
    ({"tag": "sweep-a"}, ["gamma", "beta"]),
    ({"created_after": "{yesterday}"}, ["delta", "gamma", "beta"]),
    ({"created_before": "{yesterday}"}, ["alpha"]),
    ({"search": "cosine"}, ["beta"]),
    ({"starred": "true"}, ["alpha"]),
    ({"archived": "true"}, ["epsilon"]),
    ({"archived": "all"}, ["epsilon", "delta", "gamma", "beta", "alpha"]),
    ({"status": "succeeded", "tag": "sweep-a", "dataset": "", "search": ""}, ["gamma"]),  # a form's empty fields
])
def test_each_filter_narrows_the_rows(lab, params, expected):
    values = {"wine": lab["wine"].pk, "wide": lab["wide"].pk, "yesterday": yesterday()}
    query = {name: value.format(**values) for name, value in params.items()}
    response = lab["client"].get("/runs/", query)
    assert response.status_code == 200
    assert listed(response) == expected


def test_the_filter_bar_offers_the_projects_choices_and_shows_the_chosen_ones(lab):
    body = lab["client"].get("/runs/", {"tag": "sweep-a", "user": "bea", "order": "-metric:val_accuracy:last",
                                        "created_after": "2026-01-02"}).content.decode()
    assert f'<option value="{lab["wine"].pk}">wine v1</option>' in body
    assert '<option selected>bea</option>' in body and "<option>runner</option>" in body
    assert '<option selected>sweep-a</option>' in body and "<option>baseline</option>" in body
    assert '<optgroup label="metric: val_accuracy">' in body
    assert '<option value="-metric:val_accuracy:last" selected>val_accuracy: last ↓</option>' in body
    assert 'name="created_after" value="2026-01-02"' in body


@pytest.mark.parametrize(("order", "expected"), [
    ("metric:val_accuracy:best", ["delta", "gamma", "alpha", "beta"]),  # accuracy: its highest value, highest first
    ("metric:val_accuracy:last", ["delta", "alpha", "gamma", "beta"]),
    ("-metric:val_accuracy:last", ["gamma", "alpha", "delta", "beta"]),
    ("-metric:val_accuracy:max", ["delta", "gamma", "alpha", "beta"]),
    ("metric:val_accuracy:min", ["delta", "alpha", "gamma", "beta"]),
    ("name", ["alpha", "beta", "delta", "gamma"]),
    ("created", ["alpha", "beta", "gamma", "delta"]),
])
def test_a_sort_orders_the_rows_and_runs_without_the_metric_come_last(lab, order, expected):
    response = lab["client"].get("/runs/", {"order": order})
    assert listed(response) == expected
    if order.lstrip("-").startswith("metric:"):
        assert 'data-testid="sort-metric"' in response.content.decode()


def test_pages_of_fifty_keep_the_filters(run_factory, client):
    project = run_factory.project
    made = [run_factory(name=f"r{index:02d}", status="succeeded") for index in range(53)]
    run_factory(name="not listed", status="failed")
    client.force_login(run_factory.owner)
    first = client.get("/runs/", {"status": "succeeded", "order": "name"})
    body = first.content.decode()
    assert listed(first) == [run.name for run in made[:50]]
    assert "showing 1–50 of 53" in body
    assert f'href="/runs/?project={project.pk}&amp;status=succeeded&amp;order=name&amp;page=2"' in body
    assert 'data-testid="page-previous"' not in body
    second = client.get("/runs/", {"status": "succeeded", "order": "name", "page": "2"})
    assert listed(second) == ["r50", "r51", "r52"]
    assert "showing 51–53 of 53" in second.content.decode()
    assert f'href="/runs/?project={project.pk}&amp;status=succeeded&amp;order=name" rel="prev"' in second.content.decode()
    assert 'data-testid="page-next"' not in second.content.decode()
    assert listed(client.get("/runs/", {"status": "succeeded", "order": "name", "page": "9"})) == ["r50", "r51", "r52"]


@pytest.mark.parametrize(("params", "parameter"), [
    ({"created_after": "yesterday"}, "created_after"), ({"order": "metric:val_loss:median"}, "order"),
    ({"status": "done"}, "status"), ({"dataset": "wine"}, "dataset"), ({"starred": "yes"}, "starred"),
    ({"page": "first"}, "page"), ({"order": "accuracy"}, "order"),
])
def test_a_bad_parameter_is_named_above_the_table(lab, params, parameter):
    for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
        response = lab["client"].get("/runs/", params, **headers)
        body = html.unescape(response.content.decode())
        assert response.status_code == 400
        error = re.search(r'data-testid="filter-error" data-parameter="(\w+)">(.*?)<a', body, re.S)
        assert error and error.group(1) == parameter and parameter in error.group(2)
        assert next(iter(params.values())) in error.group(2)  # and the value it refused
        assert listed(response) == []


def test_another_projects_runs_never_appear(lab, user_factory, project_factory, run_factory):
    outsider = user_factory("olga")
    theirs = project_factory("theirs", (outsider, Role.LEAD))
    dataset = Dataset.objects.create(project=theirs, name="their-data", status=DatasetStatus.READY,
                                     task="classification", input_shape=[4], num_classes=3)
    design = ModelDesign.objects.create(project=theirs, name="their-model", spec={"preset": "mlp"})
    foreign = Run.objects.create(project=theirs, dataset=dataset, design=design, queue=lab["names"]["alpha"].queue,
                                 name="foreign", status="succeeded", created_by=outsider)
    RunTag.objects.create(run=foreign, name="secret-tag")
    client = lab["client"]
    for params in ({}, {"project": theirs.pk}, {"tag": "secret-tag"}, {"user": "olga"}, {"archived": "all"},
                   {"search": "foreign"}):
        response = client.get("/runs/", params)
        body = response.content.decode()
        assert "foreign" not in listed(response) and "their-data" not in body
        assert "<option>secret-tag</option>" not in body and '<option value="secret-tag">' not in body  # not offered
    client.force_login(outsider)
    assert listed(client.get("/runs/", {"archived": "all"})) == ["foreign"]


def test_the_htmx_refresh_keeps_the_filters(lab):
    response = lab["client"].get("/runs/", {"status": "running,succeeded", "order": "name", "tag": ""},
                                 HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and body.lstrip().startswith('<div id="run-table"') and "<html" not in body
    assert f'hx-get="/runs/?project={lab["project"].pk}&amp;status=running%2Csucceeded&amp;order=name"' in body
    assert 'hx-trigger="every 3s"' in body  # delta is running
    assert listed(response) == ["alpha", "delta", "gamma"]
    finished = lab["client"].get("/runs/", {"status": "succeeded"}, HTTP_HX_REQUEST="true").content.decode()
    assert "every 3s" not in finished and 'hx-trigger="runs-changed"' in finished  # not htmx's default: every click


def test_rows_show_the_star_tags_and_first_line_of_the_notes(lab):
    body = lab["client"].get("/runs/").content.decode()
    alpha, beta = lab["names"]["alpha"], lab["names"]["beta"]
    row = {run: re.search(rf'<tr data-run="{run.pk}".*?</tr>', body, re.S).group(0) for run in (alpha, beta)}
    assert 'aria-pressed="true"' in row[alpha] and 'aria-pressed="false"' in row[beta]
    assert ">baseline</a>" in row[alpha] and "tag=baseline" in row[alpha]
    assert 'title="tried cosine\nthen step decay"' in row[beta]
    assert ">tried cosine</div>" in row[beta]


def test_no_runs_and_no_matching_runs_are_told_apart(lab, user_factory, project_factory, client):
    nothing = lab["client"].get("/runs/", {"search": "no such run"}).content.decode()
    assert "No run matches these filters." in nothing
    assert f'href="/runs/?project={lab["project"].pk}" data-testid="empty-clear-filters"' in nothing
    newcomer = user_factory("newcomer")
    project_factory("empty", (newcomer, Role.ANALYST))
    client.force_login(newcomer)
    empty = client.get("/runs/").content.decode()
    assert "No runs yet." in empty and "No run matches" not in empty


def test_the_run_page_has_a_tags_and_notes_form(lab):
    beta = lab["names"]["beta"]
    body = lab["client"].get(f"/runs/{beta.pk}/").content.decode()
    assert 'id="run-notes-form"' in body and f'data-run="{beta.pk}"' in body
    assert 'name="tags" value="sweep-a"' in body and ">tried cosine\nthen step decay</textarea>" in body
