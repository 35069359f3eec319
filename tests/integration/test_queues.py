"""Queues: seeded defaults; created, changed, paused, resumed and deleted by admins only."""
import pytest

from trainer_app.models import Queue, Run, RunStatus
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


def test_admins_create_queues_as_full_rows_and_change_them(api_client, user_factory):
    api_client.force_authenticate(user_factory("root", staff=True))
    body = {"name": "a100", "description": "big GPUs", "resource_class": "gpu", "priority": 2, "max_concurrent": 4,
            "allowed_roles": ["lead", "admin"]}
    created = api_client.post("/api/queues/", body, format="json")
    assert created.status_code == 201, created.json()
    assert {key: created.json()[key] for key in body} == body and created.json()["paused"] is False
    queue_id = created.json()["id"]
    changed = api_client.patch(f"/api/queues/{queue_id}/", {"max_concurrent": None, "allowed_roles": [],
                                                              "description": "everyone's"}, format="json")
    assert changed.status_code == 200, changed.json()
    assert (changed.json()["max_concurrent"], changed.json()["allowed_roles"]) == (None, [])
    assert changed.json()["resource_class"] == "gpu" and changed.json()["priority"] == 2
    listed = next(q for q in api_client.get("/api/queues/").json() if q["name"] == "a100")
    assert (listed["queued"], listed["active"], listed["description"]) == (0, 0, "everyone's")


def test_only_admins_change_or_delete_a_queue(api_client, user_factory):
    queues_ensure_defaults()
    cpu = Queue.objects.get(name="cpu")
    api_client.force_authenticate(user_factory("ana"))
    assert api_client.get(f"/api/queues/{cpu.id}/").json()["name"] == "cpu"
    assert api_client.patch(f"/api/queues/{cpu.id}/", {"paused": True}, format="json").status_code == 403
    assert api_client.delete(f"/api/queues/{cpu.id}/").status_code == 403
    assert Queue.objects.filter(name="cpu", paused=False).exists()


def test_wrong_queue_fields_say_what_to_do(api_client, user_factory):
    api_client.force_authenticate(user_factory("root", staff=True))
    roles = api_client.post("/api/queues/", {"name": "x", "allowed_roles": ["intern"]}, format="json")
    assert roles.status_code == 400 and "'intern'" in roles.json()["allowed_roles"][0]
    assert "analyst, lead, admin" in roles.json()["allowed_roles"][0]
    limit = api_client.post("/api/queues/", {"name": "x", "max_concurrent": 0}, format="json")
    assert limit.status_code == 400 and "pause the queue" in limit.json()["max_concurrent"][0]
    kind = api_client.post("/api/queues/", {"name": "x", "resource_class": "tpu"}, format="json")
    assert kind.status_code == 400 and "cpu or gpu" in kind.json()["resource_class"][0]
    queue = Queue.objects.create(name="y")
    rename = api_client.patch(f"/api/queues/{queue.id}/", {"name": "z"}, format="json")
    assert rename.status_code == 400 and "keeps its name" in rename.json()["name"][0]


def test_a_queue_with_unfinished_runs_is_not_deleted_and_the_answer_names_them(api_client, user_factory,
                                                                               run_factory):
    api_client.force_authenticate(user_factory("root", staff=True))
    queue = Queue.objects.create(name="busy")
    waiting, running = run_factory(queue=queue), run_factory(queue=queue, status=RunStatus.RUNNING)
    run_factory(queue=queue, status=RunStatus.SUCCEEDED)
    refused = api_client.delete(f"/api/queues/{queue.id}/")
    assert refused.status_code == 400
    message = refused.json()["detail"][0]
    assert message.startswith("2 unfinished run(s)") and f"{waiting.id} (queued)" in message
    assert f"{running.id} (running)" in message and "Cancel them" in message
    assert Queue.objects.filter(pk=queue.pk).exists()


def test_deleting_a_queue_hides_it_keeps_its_history_and_its_name_can_come_back(api_client, user_factory,
                                                                                run_factory):
    api_client.force_authenticate(user_factory("root", staff=True))
    unused = Queue.objects.create(name="unused")
    assert api_client.delete(f"/api/queues/{unused.id}/").status_code == 204
    assert not Queue.all_objects.filter(name="unused").exists()
    old = Queue.objects.create(name="old", priority=3)
    finished = run_factory(queue=old, status=RunStatus.SUCCEEDED)
    assert api_client.delete(f"/api/queues/{old.id}/").status_code == 204
    assert "old" not in [q["name"] for q in api_client.get("/api/queues/").json()]
    assert api_client.get(f"/api/queues/{old.id}/").status_code == 404
    assert Run.objects.select_related("queue").get(pk=finished.pk).queue.name == "old"
    again = api_client.post("/api/queues/", {"name": "old", "priority": 7}, format="json")
    assert again.status_code == 201 and again.json()["id"] == old.id and again.json()["priority"] == 7
