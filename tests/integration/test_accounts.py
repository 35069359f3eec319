"""Login, logout, the login rate limit, API tokens and CSRF for htmx and script posts."""
import pytest
from django.urls import reverse

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite_ok]
PASSWORD = "correct-horse-42"


def login(client, username, password, address="10.0.0.1"):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)


def test_login_page_renders_and_pages_require_login(client):
    assert client.get(reverse("login")).status_code == 200
    response = client.get(reverse("runs"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_good_login_opens_the_app_and_logout_is_post_only(client, user_factory):
    user_factory("ana")
    response = login(client, "ana", PASSWORD)
    assert response.status_code == 302
    assert client.get(reverse("runs")).status_code == 200
    assert client.get(reverse("logout")).status_code == 405  # a link cannot sign anyone out
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("runs")).status_code == 302


def test_wrong_password_says_so_without_saying_which_part(client, user_factory):
    user_factory("ana")
    response = login(client, "ana", "wrong")
    assert response.status_code == 200
    assert b"Wrong user name or password" in response.content


def test_ten_bad_attempts_lock_that_user_at_that_address_only(client, user_factory, settings):
    user_factory("ana")
    user_factory("bob")
    limit = settings.AXES_FAILURE_LIMIT
    statuses = [login(client, "ana", f"guess-{attempt}").status_code for attempt in range(10)]
    assert statuses[: limit - 1] == [200] * (limit - 1)  # wrong passwords are shown as such
    assert set(statuses[limit - 1:]) == {429}  # the limit-th failure locks the pair out
    locked = login(client, "ana", PASSWORD)
    assert locked.status_code == 429 and b"Too many failed sign-in attempts" in locked.content
    # the same user from another address, and another user from the same address, still get in
    assert login(client, "ana", PASSWORD, address="10.0.0.2").status_code == 302
    client.post(reverse("logout"))
    assert login(client, "bob", PASSWORD).status_code == 302


def test_api_token_for_good_credentials_and_clear_errors(api_client, user_factory):
    user_factory("ana")
    response = api_client.post("/api/auth/token/", {"username": "ana", "password": PASSWORD}, format="json")
    assert response.status_code == 200 and len(response.json()["token"]) == 40
    token = response.json()["token"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api_client.get("/api/projects/").status_code == 200
    api_client.credentials()
    bad = api_client.post("/api/auth/token/", {"username": "ana", "password": "nope"}, format="json")
    assert bad.status_code == 400 and bad.json() == {"detail": "Wrong user name or password."}
    missing = api_client.post("/api/auth/token/", {"username": "ana"}, format="json")
    assert missing.status_code == 400 and "password" in missing.json()


def test_api_token_endpoint_is_rate_limited_too(api_client, user_factory):
    user_factory("ana")
    for attempt in range(10):
        api_client.post("/api/auth/token/", {"username": "ana", "password": f"x{attempt}"}, format="json")
    locked = api_client.post("/api/auth/token/", {"username": "ana", "password": PASSWORD}, format="json")
    assert locked.status_code == 429 and "Too many failed attempts" in locked.json()["detail"]


def test_api_rejects_anonymous_requests(api_client):
    response = api_client.get("/api/projects/")
    assert response.status_code in (401, 403)


def test_csrf_is_enforced_for_posts_and_accepted_from_the_htmx_header(user_factory):
    from django.test import Client

    admin = user_factory("root", staff=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    page = client.get(reverse("projects"))
    token = page.cookies["csrftoken"].value if "csrftoken" in page.cookies else page.context["csrf_token"]
    refused = client.post(reverse("project-create"), {"name": "no-token"})
    assert refused.status_code == 403
    accepted = client.post(reverse("project-create"), {"name": "with-token"}, HTTP_X_CSRFTOKEN=str(token),
                           HTTP_HX_REQUEST="true")
    assert accepted.status_code == 204 and accepted["HX-Refresh"] == "true"


def test_csrf_is_enforced_for_session_authenticated_api_posts(user_factory):
    from rest_framework.test import APIClient

    admin = user_factory("root", staff=True)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(admin)
    assert client.post("/api/projects/", {"name": "x"}, format="json").status_code == 403
