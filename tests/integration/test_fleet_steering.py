"""Admins steer waiting runs: up, down, top, bottom, another priority or queue, requeue; and the order they set is
the order in which a queue's deliveries start runs. The last test does it with a real worker and real trainings."""
import pytest

from tests.conftest import wait_until
from trainer_app.models import Queue, Role, Run, RunStatus
from trainer_app.services import runs as run_services
from trainer_app.services import steering


def order(queue) -> list[int]:
    from trainer_app.selectors.fleet import queue_waiting

    return list(queue_waiting(queue=queue).values_list("id", flat=True))


@pytest.fixture
def admin(user_factory):
    return user_factory("site-admin", staff=True)


@pytest.fixture
def waiting(run_factory):
    queue = Queue.objects.create(name="steer", priority=5)
    runs = [run_factory(queue=queue, priority=5) for _ in range(4)]
    return queue, [run.pk for run in runs]


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_moves_change_the_order_and_every_run_keeps_a_place_of_its_own(api_client, admin, waiting):
    queue, (a, b, c, d) = waiting
    assert order(queue) == [a, b, c, d]
    api_client.force_authenticate(admin)
    moved = api_client.post(f"/api/runs/{c}/move/", {"direction": "up"}, format="json")
    assert moved.status_code == 200 and moved.json()["queue_position"] == 2
    assert order(queue) == [a, c, b, d]
    api_client.post(f"/api/runs/{d}/move/", {"direction": "top"}, format="json")
    api_client.post(f"/api/runs/{a}/move/", {"direction": "down"}, format="json")
    assert order(queue) == [d, c, a, b]
    api_client.post(f"/api/runs/{d}/move/", {"direction": "bottom"}, format="json")
    assert order(queue) == [c, a, b, d]
    for _ in range(3):  # repeated moves never make two runs share a place
        api_client.post(f"/api/runs/{d}/move/", {"direction": "up"}, format="json")
    assert order(queue) == [d, c, a, b]
    places = list(Run.objects.filter(queue=queue).values_list("priority", "queue_order"))
    assert len(set(places)) == 4
    # a priority puts it among that priority's runs by age; the others keep theirs
    assert api_client.post(f"/api/runs/{b}/move/", {"priority": 1}, format="json").json()["priority"] == 1
    assert order(queue) == [b, d, c, a]
    # moving up past a run of another priority takes that priority
    api_client.post(f"/api/runs/{d}/move/", {"direction": "up"}, format="json")
    assert order(queue) == [d, b, c, a] and Run.objects.get(pk=d).priority == 1


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_a_delivery_starts_the_first_waiting_run_and_sends_its_own_run_again(run_factory, waiting,
                                                                             django_capture_on_commit_callbacks):
    queue, (a, b, c, d) = waiting
    steering.run_move(run=Run.objects.get(pk=c), direction="top")
    with django_capture_on_commit_callbacks() as callbacks:  # the message of a is a start token for c
        assert steering.run_claim_in_order(run_id=a, owner="w:1") == c
    assert len(callbacks) == 1, "run a is sent again: it keeps a message of its own"
    assert Run.objects.get(pk=c).status == RunStatus.STARTING and Run.objects.get(pk=a).status == RunStatus.QUEUED
    assert steering.run_claim_in_order(run_id=d, owner="w:2") == a
    # a delivery whose run is taken, finished or cancelled does nothing
    assert steering.run_claim_in_order(run_id=c, owner="w:3") is None
    run_services.run_cancel(run=Run.objects.get(pk=b))
    assert steering.run_claim_in_order(run_id=b, owner="w:4") is None
    assert steering.run_claim_in_order(run_id=d, owner="w:5") == d


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_a_delivery_from_the_queue_a_run_was_moved_out_of_claims_nothing(waiting):
    """The task checks where its run is before it claims; a move that lands between that check and the claim
    must still win (CI saw a run moved to a queue no worker consumes started by its old queue's message)."""
    queue, (a, b, _c, _d) = waiting
    Queue.objects.create(name="parked")
    steering.run_move(run=Run.objects.get(pk=a), queue_name="parked")
    assert steering.run_claim_in_order(run_id=a, owner="w:old", queue_name="steer") is None
    assert not run_services.run_claim(run_id=a, owner="w:old", queue_id=queue.pk)
    assert Run.objects.filter(pk=a, status=RunStatus.QUEUED, started_at__isnull=True).exists()
    assert steering.run_claim_in_order(run_id=b, owner="w:b", queue_name="steer") == b, "the others still start"
    assert steering.run_claim_in_order(run_id=a, owner="w:new", queue_name="parked") == a


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_a_run_ahead_that_does_not_fit_this_worker_is_passed(run_factory):
    from tests.integration.test_fleet_placement import gpu_worker

    queue = Queue.objects.create(name="gpu-steer", resource_class="gpu")
    worker = gpu_worker("gpu@small", 2)
    worker.queues = ["gpu-steer"]
    worker.save()
    big = run_factory(queue=queue, resources={"nproc_per_node": 4, "gpus_per_node": 4})
    small = run_factory(queue=queue, resources={"nproc_per_node": 1, "gpus_per_node": 1})
    assert steering.run_claim_in_order(run_id=big.pk, owner="w:1", worker_name=worker.name) is None
    assert steering.run_claim_in_order(run_id=small.pk, owner="w:2", worker_name=worker.name) == small.pk


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_moving_to_another_queue_checks_resources_and_roles_and_leaves_the_old_message_idle(
        api_client, admin, run_factory, django_capture_on_commit_callbacks):
    cpu = Queue.objects.create(name="cpu-only", resource_class="cpu")
    gpu = Queue.objects.create(name="gpu-big", resource_class="gpu", priority=2)
    Queue.objects.create(name="leads-only", resource_class="gpu", allowed_roles=["lead"])
    gpu_job = run_factory(queue=gpu, priority=2, resources={"nproc_per_node": 1, "gpus_per_node": 1})
    cpu_job = run_factory(queue=cpu, priority=5)
    api_client.force_authenticate(admin)
    refused = api_client.post(f"/api/runs/{gpu_job.pk}/move/", {"queue": "cpu-only"}, format="json")
    assert refused.status_code == 400 and "'cpu-only' is a CPU queue" in refused.json()["queue"][0]
    refused = api_client.post(f"/api/runs/{gpu_job.pk}/move/", {"queue": "leads-only"}, format="json")
    assert refused.status_code == 400
    assert "owner runner is analyst of runs-project: choose one of" in refused.json()["queue"][0]
    refused = api_client.post(f"/api/runs/{gpu_job.pk}/move/", {"queue": "nowhere"}, format="json")
    assert refused.status_code == 400 and "No queue named 'nowhere'" in refused.json()["queue"][0]
    with django_capture_on_commit_callbacks() as callbacks:
        moved = api_client.post(f"/api/runs/{cpu_job.pk}/move/", {"queue": "gpu-big"}, format="json")
    assert moved.status_code == 200 and moved.json()["queue"] == "gpu-big" and moved.json()["priority"] == 2
    assert len(callbacks) == 1, "a message is sent to the new queue"
    assert steering.run_delivered_elsewhere(run_id=cpu_job.pk, queue_name="cpu-only")
    assert not steering.run_delivered_elsewhere(run_id=cpu_job.pk, queue_name="gpu-big")
    assert not steering.run_delivered_elsewhere(run_id=cpu_job.pk, queue_name=None)  # called directly


@pytest.mark.django_db
@pytest.mark.sqlite_ok
@pytest.mark.parametrize(("body", "field", "fragment"), [
    ({"direction": "sideways"}, "direction", "use up, down, top or bottom"),
    ({}, "detail", "Say where to move the run"),
    ({"priority": 12}, "priority", "from 0 (highest) to 9"),
    ({"priority": "high"}, "priority", "valid integer"),
    ({"direction": "up", "priority": 1}, "direction", "Give a direction alone"),
])
def test_bad_moves_are_refused_with_the_fix(api_client, admin, waiting, body, field, fragment):
    api_client.force_authenticate(admin)
    response = api_client.post(f"/api/runs/{waiting[1][2]}/move/", body, format="json")
    assert response.status_code == 400 and fragment in str(response.json()[field]), response.json()


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_only_waiting_runs_move_and_only_admins_steer(api_client, admin, user_factory, project_factory, waiting):
    queue, (a, b, c, d) = waiting
    api_client.force_authenticate(admin)
    assert api_client.post(f"/api/runs/{a}/move/", {"direction": "up"}, format="json").status_code == 409
    assert api_client.post(f"/api/runs/{a}/move/", {"direction": "top"}, format="json").status_code == 200  # no-op
    Run.objects.filter(pk=b).update(status=RunStatus.SUCCEEDED)
    finished = api_client.post(f"/api/runs/{b}/move/", {"direction": "top"}, format="json")
    assert finished.status_code == 409 and "Only a waiting run can be moved; run" in finished.json()["status"][0]
    member = Run.objects.get(pk=a).created_by  # the project's analyst
    project_admin = user_factory("project-admin")
    project = Run.objects.get(pk=a).project
    project.memberships.create(user=project_admin, role=Role.ADMIN)
    for user in (member, project_admin):
        api_client.force_authenticate(user)
        for url in (f"/api/runs/{c}/move/", f"/api/runs/{c}/requeue/"):
            response = api_client.post(url, {"direction": "top"}, format="json")
            assert response.status_code == 403 and "Only admins steer the queues" in response.json()["detail"]
    api_client.force_authenticate(user_factory("outsider"))
    assert api_client.post(f"/api/runs/{c}/move/", {"direction": "top"}, format="json").status_code == 404
    assert api_client.post(f"/api/runs/{c}/requeue/").status_code == 404
    assert order(queue) == [a, c, d]


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_requeue_stops_a_running_run_to_wait_again_and_puts_a_failed_one_at_the_back(api_client, admin, waiting):
    queue, (a, b, c, d) = waiting
    api_client.force_authenticate(admin)
    assert api_client.post(f"/api/runs/{a}/requeue/").status_code == 409  # already waiting
    assert run_services.run_claim(run_id=a, owner="w:a")
    body = api_client.post(f"/api/runs/{a}/requeue/").json()
    assert body["status"] == "starting" and body["requeue_requested"] and body["cancel_requested"]
    assert api_client.post(f"/api/runs/{a}/requeue/").status_code == 409  # already stopping
    assert run_services.run_heartbeat(run_id=a, owner="w:a") == (True, True)  # the supervisor stops the engine
    assert run_services.run_finish(run_id=a, owner="w:a", status=RunStatus.CANCELLED)
    run = Run.objects.get(pk=a)
    assert (run.status, run.deliveries, run.cancel_requested, run.requeue_requested) == ("queued", 0, False, False)
    assert order(queue) == [a, b, c, d], "it waits at its place"
    Run.objects.filter(pk=b).update(status=RunStatus.FAILED)
    assert api_client.post(f"/api/runs/{b}/requeue/").json()["status"] == "queued"
    assert order(queue) == [a, c, d, b], "a failed run waits behind those already waiting"
    Run.objects.filter(pk=c).update(status=RunStatus.SUCCEEDED)
    finished = api_client.post(f"/api/runs/{c}/requeue/")
    assert finished.status_code == 409 and "Launch a new run from it" in finished.json()["status"][0]


@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_a_cancel_wins_over_a_pending_requeue(waiting):
    queue, (a, *_rest) = waiting
    assert run_services.run_claim(run_id=a, owner="w:a")
    steering.run_requeue(run=Run.objects.get(pk=a))
    run_services.run_cancel(run=Run.objects.get(pk=a))
    assert run_services.run_finish(run_id=a, owner="w:a", status=RunStatus.CANCELLED)
    assert Run.objects.get(pk=a).status == RunStatus.CANCELLED


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker_process")
def test_a_real_worker_starts_waiting_runs_in_the_order_an_admin_set(api_client, admin, settings):
    """Three trainings wait on the paused cpu queue (one at a time); the admin moves the last to the top and the
    first down; resumed, the worker starts them in that order (each is cancelled as soon as it starts). A fourth,
    moved to a queue no worker consumes, is not started by the message it left on the cpu queue."""
    from tests.integration.test_runs_end_to_end import launch

    lab = _lab(api_client)
    cpu = Queue.objects.get(name="cpu")
    Queue.objects.filter(pk=cpu.pk).update(paused=True, max_concurrent=1)
    first, second, third, parked = (launch(lab, dataset="wine", model="mlp", epochs=1, seed=seed).json()["id"]
                                    for seed in range(4))
    Queue.objects.create(name="parked")  # no worker consumes it
    api_client.force_authenticate(admin)
    assert api_client.post(f"/api/runs/{parked}/move/", {"queue": "parked"}, format="json").status_code == 200
    assert api_client.post(f"/api/runs/{third}/move/", {"direction": "top"}, format="json").status_code == 200
    assert api_client.post(f"/api/runs/{first}/move/", {"direction": "down"}, format="json").status_code == 200
    assert order(cpu) == [third, second, first]
    api_client.post(f"/api/queues/{cpu.pk}/resume/")
    ids = [first, second, third]

    def cancelled_once_started() -> bool:  # what matters is the order they start in: stop each at once
        for run in Run.objects.filter(pk__in=ids, status__in=("starting", "running"), cancel_requested=False):
            run_services.run_cancel(run=run)
        # (a SIGTERM that lands while the engine still imports torch may end it failed rather than cancelled, and
        # a run that trains within the supervisor's 5 s beat succeeds before it hears of the cancel)
        return Run.objects.filter(pk__in=ids, status__in=("cancelled", "failed", "succeeded")).count() == 3

    wait_until(cancelled_once_started, timeout_s=240, interval_s=0.3, message="the three runs to start and stop")
    started = list(Run.objects.filter(pk__in=ids).order_by("started_at").values_list("id", flat=True))
    assert started == [third, second, first]
    # its message left in the cpu queue did nothing there: it waits in the queue it was moved to
    assert Run.objects.filter(pk=parked, status="queued", started_at__isnull=True).exists()
    run_services.run_cancel(run=Run.objects.get(pk=parked))


def _lab(api_client):
    """The end-to-end tests' project (sample datasets, an MLP design), for a test that also needs an admin."""
    from django.contrib.auth import get_user_model

    from trainer_app.models import Dataset, Membership, Project
    from trainer_app.services.datasets import datasets_seed_samples
    from trainer_app.services.queues import queues_ensure_defaults

    user = get_user_model().objects.create_user("ana", password="correct-horse-42")
    project = Project.objects.create(name="lab")
    Membership.objects.create(project=project, user=user, role=Role.ANALYST)
    datasets_seed_samples(project=project, created_by=user)
    queues_ensure_defaults()
    api_client.force_authenticate(user)
    mlp = api_client.post("/api/models/", {"project": project.id, "name": "mlp", "spec": {"preset": "mlp"}},
                          format="json").json()
    return {"client": api_client, "project": project, "user": user, "mlp": mlp["id"],
            "wine": Dataset.objects.get(project=project, name="wine").id}



@pytest.mark.django_db
@pytest.mark.sqlite_ok
def test_the_fleet_page_lists_waiting_runs_in_start_order_and_the_run_page_has_the_admin_controls(client, admin,
                                                                                               waiting):
    queue, (a, b, c, d) = waiting
    steering.run_move(run=Run.objects.get(pk=d), direction="top")
    client.force_login(admin)
    page = client.get("/fleet/").content.decode()
    listed = page[page.index('data-testid="queue-waiting-steer"'):]
    assert [listed.index(f'data-run="{run_id}"') for run_id in (d, a, b, c)] == sorted(
        listed.index(f'data-run="{run_id}"') for run_id in (d, a, b, c))
    assert 'data-run-move="up"' in listed
    Run.objects.get(pk=a).project.memberships.create(user=admin, role=Role.ADMIN)
    detail = client.get(f"/runs/{b}/").content.decode()
    assert 'data-testid="run-steer"' in detail and 'data-steer="top"' in detail and "run_steer.js" in detail
    member = Run.objects.get(pk=a).created_by
    client.force_login(member)
    assert 'data-testid="run-steer"' not in client.get(f"/runs/{b}/").content.decode()
