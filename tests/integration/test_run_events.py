"""GET /api/runs/{id}/events/: the run's stream as Server-Sent Events, resumable with Last-Event-ID,
refused to anyone who cannot see the run."""
import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import AsyncClient

from trainer_app.models import Role
from trainer_app.streams import redis_client, run_stream_key

pytestmark = [pytest.mark.django_db(transaction=True)]


async def read_events(client: AsyncClient, url: str, count: int, **headers) -> list[dict]:
    response = await client.get(url, headers=headers)
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    events, buffer = [], ""
    iterator = response.streaming_content.__aiter__()
    while len(events) < count:
        chunk = await asyncio.wait_for(iterator.__anext__(), timeout=10)
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
            if "id" in fields:
                events.append(fields)
    await iterator.aclose()
    return events


@pytest.fixture
def stream(run_factory):
    run = run_factory()
    client = redis_client()
    key = run_stream_key(run.pk)
    client.delete(key)
    ids = [client.xadd(key, {"kind": "metrics", "data": json.dumps({"step": step, "values": {"train_loss": step}})})
           .decode() for step in range(1, 6)]
    yield run, ids
    client.delete(key)
    # the view's database work ran in asgiref's thread: close that thread's connection too
    asyncio.run(sync_to_async(connections.close_all)())


def test_events_replay_in_order_and_resume_after_the_last_event_id(stream, run_factory):
    run, ids = stream
    client = AsyncClient()
    client.force_login(run_factory.owner)
    url = f"/api/runs/{run.pk}/events/"
    first = asyncio.run(read_events(client, url, 5))
    assert [event["id"] for event in first] == ids
    assert [json.loads(event["data"])["step"] for event in first] == [1, 2, 3, 4, 5]
    assert {event["event"] for event in first} == {"metrics"}
    resumed = asyncio.run(read_events(client, url, 2, **{"Last-Event-ID": ids[2]}))
    assert [event["id"] for event in resumed] == ids[3:]  # no gap, no duplicate


def test_events_of_a_run_the_user_cannot_see_are_refused(stream, user_factory, project_factory):
    run, _ = stream
    outsider = user_factory("olga")
    project_factory("other", (outsider, Role.LEAD))
    client = AsyncClient()
    client.force_login(outsider)
    assert asyncio.run(client.get(f"/api/runs/{run.pk}/events/")).status_code == 404
    assert asyncio.run(AsyncClient().get(f"/api/runs/{run.pk}/events/")).status_code == 401


def test_a_malformed_last_event_id_is_a_400_that_says_the_form(stream, run_factory):
    run, _ = stream
    client = AsyncClient()
    client.force_login(run_factory.owner)
    response = asyncio.run(client.get(f"/api/runs/{run.pk}/events/", headers={"Last-Event-ID": "yesterday"}))
    assert response.status_code == 400 and "1700000000000-0" in response.json()["detail"]


def test_a_quiet_stream_sends_heartbeats_and_ends_when_the_run_is_final(stream, run_factory, settings):
    """Catches a socket timeout shorter than the blocking read, which broke every quiet stream."""
    from trainer_app.models import Run, RunStatus

    settings.SSE_HEARTBEAT_SECONDS = 6  # longer than redis-py's default 5 s socket timeout
    run, ids = stream
    Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    client = AsyncClient()
    client.force_login(run_factory.owner)

    async def until_end():
        response = await client.get(f"/api/runs/{run.pk}/events/", headers={"Last-Event-ID": ids[-1]})
        text = ""
        async for chunk in response.streaming_content:
            text += chunk.decode() if isinstance(chunk, bytes) else chunk
        return text

    text = asyncio.run(asyncio.wait_for(until_end(), timeout=20))
    assert "event: heartbeat" in text and '"status": "succeeded"' in text and text.rstrip().endswith("data: {}")
    assert "event: metrics" not in text  # nothing replayed before the Last-Event-ID
