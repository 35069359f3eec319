"""The knowledge-graph page: a canvas over the API, a helpful empty state, a banner when the graph is down."""

import pytest
from django.urls import reverse

from config.embedded import free_port
from kg_app.services import graph_sync


@pytest.fixture
def graph(configured_graph):
    return configured_graph


def test_the_page_serves_the_canvas_and_cytoscape_from_our_static_files(client, graph, run_factory):
    run = run_factory(name="visible-run")
    graph_sync(store=graph)
    client.force_login(run_factory.owner)
    page = client.get(reverse("graph"), {"node": f"run:{run.pk}"}).content.decode()
    assert 'data-testid="graph-canvas"' in page and "vendor/cytoscape.min.js" in page and "js/graph.js" in page
    assert 'data-testid="empty-state"' not in page and 'data-testid="graph-down"' not in page
    assert f'"start": "run:{run.pk}"' in page
    assert 'data-testid="graph-console"' not in page  # site admins only


def test_a_project_without_lineage_gets_a_helpful_empty_state(client, graph, run_factory, user_factory,
                                                              project_factory):
    from trainer_app.models import Role

    run_factory(name="someone-elses-run")
    graph_sync(store=graph)
    newcomer = user_factory("newcomer")
    project_factory("empty-project", (newcomer, Role.ANALYST))
    client.force_login(newcomer)
    page = client.get(reverse("graph")).content.decode()
    assert 'data-testid="empty-state"' in page and "no lineage of your projects yet" in page
    assert 'data-testid="graph-canvas"' in page  # the concepts can still be explored


def test_a_graph_server_that_is_down_gives_a_banner_not_an_error_page(client, settings, run_factory):
    settings.KG_URL = f"falkordb://127.0.0.1:{free_port()}"
    client.force_login(run_factory.owner)
    response = client.get(reverse("graph"))
    assert response.status_code == 200
    assert b'data-testid="graph-down"' in response.content


def test_site_admins_get_the_console(client, graph, user_factory):
    client.force_login(user_factory("site-admin", staff=True))
    assert b'data-testid="graph-console"' not in client.get(reverse("graph")).content  # not in a project yet
    from trainer_app.models import Membership, Project, Role

    project = Project.objects.create(name="admins")
    Membership.objects.create(project=project, user=user_factory("other-admin", staff=True), role=Role.ADMIN)
    client.force_login(project.memberships.get().user)
    assert b'data-testid="graph-console"' in client.get(reverse("graph")).content


def test_run_dataset_and_model_pages_link_to_their_node_in_the_graph(client, run_factory):
    run = run_factory(name="linked")
    client.force_login(run_factory.owner)
    dataset_page = client.get(reverse("dataset-detail", args=[run.dataset_id])).content.decode()
    assert f'href="/graph/?node=datasetversion:{run.dataset_id}"' in dataset_page
    run_page = client.get(reverse("run-detail", args=[run.pk])).content.decode()
    assert f'href="/graph/?node=run:{run.pk}"' in run_page
    model_page = client.get(reverse("model-detail", args=[run.design_id])).content.decode()
    assert f'href="/graph/?node=design:{run.design_id}"' in model_page
