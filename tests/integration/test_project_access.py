"""Every object belongs to a project; lists and details never show another project's objects."""
import pytest
from django.urls import reverse

from trainer_app.models import Membership, Project, Role

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite_ok]


@pytest.fixture
def team(user_factory, project_factory):
    ana, lena, olga, root = user_factory("ana"), user_factory("lena"), user_factory("olga"), user_factory("root", staff=True)
    vision = project_factory("vision", (ana, Role.ANALYST), (lena, Role.ADMIN))
    speech = project_factory("speech", (olga, Role.LEAD))
    return {"ana": ana, "lena": lena, "olga": olga, "root": root, "vision": vision, "speech": speech}


def test_project_list_shows_only_the_users_projects_with_their_role(api_client, team):
    api_client.force_authenticate(team["ana"])
    assert api_client.get("/api/projects/").json() == [
        {"id": team["vision"].id, "name": "vision", "description": "", "role": "analyst"}]
    api_client.force_authenticate(team["olga"])
    assert [p["name"] for p in api_client.get("/api/projects/").json()] == ["speech"]


def test_another_projects_detail_is_404_not_403(api_client, team):
    api_client.force_authenticate(team["ana"])
    assert api_client.get(f"/api/projects/{team['speech'].id}/").status_code == 404
    assert api_client.get(f"/api/projects/{team['speech'].id}/members/").status_code == 404
    assert api_client.get(f"/api/projects/{team['vision'].id}/").json()["role"] == "analyst"


def test_site_admins_see_no_project_they_are_not_member_of(api_client, team):
    api_client.force_authenticate(team["root"])
    assert api_client.get("/api/projects/").json() == []


def test_only_project_admins_change_members(api_client, team):
    url = f"/api/projects/{team['vision'].id}/members/"
    api_client.force_authenticate(team["ana"])
    refused = api_client.post(url, {"username": "olga", "role": "analyst"}, format="json")
    assert refused.status_code == 403 and "admins" in refused.json()["detail"]
    api_client.force_authenticate(team["lena"])
    added = api_client.post(url, {"username": "olga", "role": "lead"}, format="json")
    assert added.status_code == 200 and added.json() == {"username": "olga", "role": "lead"}
    assert Membership.objects.get(project=team["vision"], user=team["olga"]).role == Role.LEAD


def test_bad_member_input_says_what_to_fix(api_client, team):
    url = f"/api/projects/{team['vision'].id}/members/"
    api_client.force_authenticate(team["lena"])
    unknown_user = api_client.post(url, {"username": "nobody", "role": "lead"}, format="json")
    assert unknown_user.status_code == 400 and "No user named 'nobody'" in unknown_user.json()["username"][0]
    bad_role = api_client.post(url, {"username": "olga", "role": "owner"}, format="json")
    assert bad_role.status_code == 400 and "role" in bad_role.json()


def test_only_site_admins_create_projects_and_names_are_unique(api_client, team):
    api_client.force_authenticate(team["ana"])
    assert api_client.post("/api/projects/", {"name": "nlp"}, format="json").status_code == 403
    api_client.force_authenticate(team["root"])
    created = api_client.post("/api/projects/", {"name": "nlp"}, format="json")
    assert created.status_code == 201 and created.json()["role"] == "admin"
    duplicate = api_client.post("/api/projects/", {"name": "NLP"}, format="json")
    assert duplicate.status_code == 400 and "already exists" in duplicate.json()["name"][0]
    assert Project.objects.filter(name__iexact="nlp").count() == 1


def test_projects_page_lists_only_member_projects(client, team):
    client.force_login(team["ana"])
    page = client.get(reverse("projects")).content.decode()
    assert 'data-project="vision"' in page and "speech" not in page


def test_admin_pages_and_api_are_refused_to_analysts(client, api_client, team):
    client.force_login(team["ana"])
    assert client.get(reverse("fleet")).status_code == 403
    assert client.get(reverse("status")).status_code == 403
    page = client.get(reverse("runs")).content.decode()
    assert 'data-nav="fleet"' not in page and 'data-nav="status"' not in page
    api_client.force_authenticate(team["ana"])
    assert api_client.get("/api/workers/").status_code == 403


def test_every_navigation_entry_renders_with_an_empty_state(client, team):
    client.force_login(team["ana"])
    for name in ["datasets", "models", "runs", "sweeps", "leaderboards", "graph", "projects"]:
        response = client.get(reverse(name))
        assert response.status_code == 200, name
        assert b'data-testid="empty-state"' in response.content or name == "projects"


def test_user_without_a_project_is_told_what_to_do(client, user_factory):
    client.force_login(user_factory("newbie"))
    assert b"You are not in a project yet" in client.get(reverse("datasets")).content
