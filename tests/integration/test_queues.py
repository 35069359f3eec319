"""Queues: seeded defaults, created, paused and resumed by admins only."""
import pytest

from trainer_app.models import Queue
from trainer_app.services.queues import queues_ensure_defaults

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite_ok]


def test_admins_create_pause_and_resume_queues_and_analysts_only_read(api_client, user_factory):
    queues_ensure_defaults()
    api_client.force_authenticate(user_factory("ana"))
    assert [q["name"] for q in api_client.get("/api/queues/").json()] == ["cpu", "gpu"]
    assert api_client.post("/api/queues/", {"name": "big"}, format="json").status_code == 403
    cpu = Queue.objects.get(name="cpu")
    assert api_client.post(f"/api/queues/{cpu.id}/pause/").status_code == 403
    api_client.force_authenticate(user_factory("root", staff=True))
    created = api_client.post("/api/queues/", {"name": "big-gpu", "priority": 1}, format="json")
    assert created.status_code == 201 and created.json()["priority"] == 1
    assert api_client.post(f"/api/queues/{cpu.id}/pause/").json()["paused"] is True
    assert api_client.post(f"/api/queues/{cpu.id}/resume/").json()["paused"] is False


def test_bad_queue_names_and_priorities_say_what_to_do(api_client, user_factory):
    api_client.force_authenticate(user_factory("root", staff=True))
    bad_name = api_client.post("/api/queues/", {"name": "Big GPUs!"}, format="json")
    assert bad_name.status_code == 400 and "try 'big-gpus'" in bad_name.json()["name"][0]
    bad_priority = api_client.post("/api/queues/", {"name": "x", "priority": 12}, format="json")
    assert bad_priority.status_code == 400 and "0 (highest) to 9" in bad_priority.json()["priority"][0]
