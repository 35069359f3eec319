"""GET /api/runs/{id}/events/: the run's Redis Stream as Server-Sent Events.

An async view under ASGI (a sync generator would be buffered whole and never send a byte, see
DESIGN.md). Each event carries the stream entry id as its SSE id, so a browser that reconnects sends
Last-Event-ID and resumes with no gap and no duplicate. `?after=<id>` starts after a known entry (the
page passes the position already persisted to SQL, which it drew from).
"""
from __future__ import annotations

import json
import re

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import JsonResponse, StreamingHttpResponse

from trainer_app.models import FINAL_STATUSES, Run
from trainer_app.streams import run_stream_key

ENTRY_ID = re.compile(r"^\d+-\d+$")
BLOCK_MS = 15_000
BATCH = 500


def _visible_run(user, run_id: int) -> Run | None:
    from trainer_app.selectors import run_list

    return run_list(user=user).filter(id=run_id).first()


def _token_user(request):
    from rest_framework.authtoken.models import Token

    header = request.headers.get("Authorization", "")
    if header.startswith("Token "):
        token = Token.objects.select_related("user").filter(key=header[6:].strip()).first()
        return token.user if token else None
    return None


def _run_status(run_id: int) -> str:
    return Run.objects.filter(id=run_id).values_list("status", flat=True).first()


async def run_events(request, run_id: int):
    user = await request.auser()
    if not user.is_authenticated:
        user = await sync_to_async(_token_user)(request)
    if user is None or not user.is_authenticated:
        return JsonResponse({"detail": "Sign in, or send Authorization: Token <token>."}, status=401)
    run = await sync_to_async(_visible_run)(user, run_id)
    if run is None:
        return JsonResponse({"detail": "Not found."}, status=404)
    start = request.headers.get("Last-Event-ID") or request.GET.get("after") or "0-0"
    if not ENTRY_ID.match(start):
        return JsonResponse({"detail": f"Last-Event-ID/after must be a stream entry id like 1700000000000-0, "
                                       f"not {start!r}."}, status=400)
    response = StreamingHttpResponse(_stream(run.pk, start), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


async def _stream(run_id: int, cursor: str):
    client = aioredis.from_url(settings.REDIS_URL, socket_connect_timeout=3)
    key = run_stream_key(run_id)
    try:
        yield "retry: 2000\n\n"
        while True:
            answer = await client.xread({key: cursor}, count=BATCH, block=BLOCK_MS)
            if not answer:
                status = await sync_to_async(_run_status)(run_id)
                yield f"event: heartbeat\ndata: {json.dumps({'status': status})}\n\n"
                if status in FINAL_STATUSES:
                    yield "event: end\ndata: {}\n\n"
                    return
                continue
            chunks = []
            for entry_id, fields in answer[0][1]:
                cursor = entry_id.decode()
                kind = fields.get(b"kind", b"message").decode()
                data = fields.get(b"data", b"{}").decode()
                chunks.append(f"id: {cursor}\nevent: {kind}\ndata: {data}\n\n")
            yield "".join(chunks)
    finally:
        await client.aclose()

