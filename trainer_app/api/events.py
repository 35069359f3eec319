"""GET /api/runs/{id}/events/: the run's Redis Stream as Server-Sent Events.

An async view under ASGI (a sync generator would be buffered whole and never send a byte, see
DESIGN.md). Each event carries the stream entry id as its SSE id, so a browser that reconnects sends
Last-Event-ID and resumes with no gap and no duplicate. `?after=<id>` starts after a known entry (the
page passes the position already persisted to SQL, which it drew from).
"""
from __future__ import annotations

import asyncio
import bisect
import json
import re
from typing import ClassVar

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import JsonResponse, StreamingHttpResponse
from redis.exceptions import RedisError

from trainer_app.models import FINAL_STATUSES, Run
from trainer_app.streams import run_stream_key

ENTRY_ID = re.compile(r"^\d+-\d+$")
BLOCK_MS = 15_000
BATCH = 500
# After sending a partial batch a viewer waits this long before taking more, so that a busy stream goes
# out in a few larger chunks per second instead of one tiny chunk per point (50 viewers of a run written
# at 1,000 points/s: 1,000 sends a second instead of 50,000). The first point after a quiet spell still
# goes out at once; browsers redraw every ~250 ms anyway (DESIGN.md).
COALESCE_S = 0.05


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
    key = run_stream_key(run_id)
    client = aioredis.from_url(settings.REDIS_URL, socket_connect_timeout=3)
    tail = None
    try:
        yield "retry: 2000\n\n"
        # Replay on our own first: a viewer resuming far back must not hold up the others.
        while True:
            cursor, texts = await _read_after(client, key, cursor)
            if texts:
                yield "".join(texts)
            if len(texts) < BATCH:
                break
        tail = _StreamTail.join(key, cursor)
        while True:
            if tail.error is not None:
                raise tail.error
            found = tail.after(cursor)
            if found is None:  # behind what the shared reader keeps: read on our own again
                cursor, texts = await _read_after(client, key, cursor)
            else:
                cursor, texts = found
            if texts:
                yield "".join(texts)
                if len(texts) < BATCH:
                    await asyncio.sleep(COALESCE_S)
                continue
            changed = tail.changed
            try:
                await asyncio.wait_for(changed.wait(), settings.SSE_HEARTBEAT_SECONDS)
            except TimeoutError:
                status = await sync_to_async(_run_status)(run_id)
                yield f"event: heartbeat\ndata: {json.dumps({'status': status})}\n\n"
                if status in FINAL_STATUSES:
                    yield "event: end\ndata: {}\n\n"
                    return
    finally:
        if tail is not None:
            tail.leave()
        await client.aclose()


def _event_text(entry_id: str, fields: dict) -> str:
    kind = fields.get(b"kind", b"message").decode()
    data = fields.get(b"data", b"{}").decode()
    return f"id: {entry_id}\nevent: {kind}\ndata: {data}\n\n"


def _order(entry_id: str) -> tuple[int, int]:
    milliseconds, sequence = entry_id.split("-")
    return int(milliseconds), int(sequence)


async def _read_after(client, key: str, cursor: str) -> tuple[str, list[str]]:
    """Up to BATCH entries after `cursor`, without waiting: (the new cursor, their SSE texts)."""
    answer = await client.xread({key: cursor}, count=BATCH)
    texts = []
    for entry_id, fields in (answer[0][1] if answer else ()):
        cursor = entry_id.decode()
        texts.append(_event_text(cursor, fields))
    return cursor, texts


class _StreamTail:
    """The one reader of a run's stream in this server process, shared by every viewer that has caught up.

    Each viewer reading the stream itself made every entry be fetched and parsed once per viewer (Python's
    RESP parser: ~14 µs an entry), which at 50 viewers and 1,000 points/s took most of a core and let them
    fall seconds behind (benchmarks/bench_live_latency.py). The tail reads each entry once, formats its SSE
    text once and keeps the last KEEP of them; a viewer takes every entry after its own cursor, so each
    still gets every point exactly once and in order, and one that falls further behind reads on its own.
    """

    KEEP = 5_000
    _open: ClassVar[dict[tuple[asyncio.AbstractEventLoop, str], _StreamTail]] = {}

    def __init__(self, key: str, cursor: str):
        self.key = key
        self.floor = _order(cursor)  # every entry after this one is kept here, up to the last read
        self.ids: list[tuple[int, int]] = []
        self.entry_ids: list[str] = []
        self.texts: list[str] = []
        self.viewers = 0
        self.error: Exception | None = None
        self.changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._read(cursor))

    @classmethod
    def join(cls, key: str, cursor: str) -> _StreamTail:
        loop = asyncio.get_running_loop()
        tail = cls._open.get((loop, key))
        if tail is None or tail.error is not None:
            tail = cls._open[(loop, key)] = cls(key, cursor)
        tail.viewers += 1
        return tail

    def leave(self) -> None:
        self.viewers -= 1
        if self.viewers <= 0:
            self._task.cancel()
            if self._open.get((self._loop, self.key)) is self:
                del self._open[(self._loop, self.key)]

    def after(self, cursor: str) -> tuple[str, list[str]] | None:
        """(the new cursor, the texts of the kept entries after `cursor`), or None if some are not kept."""
        position = _order(cursor)
        if position < self.floor:
            return None
        start = bisect.bisect_right(self.ids, position)
        if start == len(self.ids):
            return cursor, []
        return self.entry_ids[-1], self.texts[start:]

    async def _read(self, cursor: str) -> None:
        # The blocking XREAD waits up to BLOCK_MS: the socket must wait longer than that, or redis-py's
        # default 5 s socket timeout ends every quiet read with an error (and every viewer's stream).
        client = aioredis.from_url(settings.REDIS_URL, socket_connect_timeout=3, socket_timeout=BLOCK_MS / 1000 + 10)
        try:
            while True:
                answer = await client.xread({self.key: cursor}, count=BATCH, block=BLOCK_MS)
                if not answer:
                    continue
                for entry_id, fields in answer[0][1]:
                    cursor = entry_id.decode()
                    self.ids.append(_order(cursor))
                    self.entry_ids.append(cursor)
                    self.texts.append(_event_text(cursor, fields))
                if len(self.ids) > 2 * self.KEEP:
                    self.floor = self.ids[-self.KEEP - 1]
                    del self.ids[:-self.KEEP], self.entry_ids[:-self.KEEP], self.texts[:-self.KEEP]
                self._notify()
        except asyncio.CancelledError:
            raise
        except (RedisError, OSError) as error:  # Redis went away: the viewers' streams end, browsers reconnect
            self.error = error
            self._notify()
        finally:
            await client.aclose()

    def _notify(self) -> None:
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()
