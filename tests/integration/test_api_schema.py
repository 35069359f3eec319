"""The OpenAPI schema and its browsable UI, served without any CDN."""
import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite_ok]

CONTRACT_PATHS = ["/api/auth/token/", "/api/projects/", "/api/datasets/", "/api/datasets/{dataset_id}/",
                  "/api/models/", "/api/models/validate/", "/api/runs/", "/api/runs/{run_id}/",
                  "/api/runs/{run_id}/metrics/", "/api/runs/{run_id}/cancel/", "/api/runs/{run_id}/resume/",
                  "/api/queues/", "/api/health/", "/api/workers/"]


def test_schema_lists_the_contract_paths(client, user_factory):
    client.force_login(user_factory("ana"))
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    missing = [path for path in CONTRACT_PATHS if path not in paths]
    assert not missing, missing


def test_browsable_docs_load_their_assets_from_this_server(client, user_factory):
    client.force_login(user_factory("ana"))
    page = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in page
    assert "cdn." not in page and "unpkg" not in page and "jsdelivr" not in page
    assert "/static/drf_spectacular_sidecar/" in page
