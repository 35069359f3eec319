"""The run event stream: one capped Redis Stream per run, written by the engine's rank 0, read by
the persister (into SQL) and the browser (Server-Sent Events). Each entry has a `kind` field and a
JSON `data` field."""
from __future__ import annotations

import json

import redis
from django.conf import settings

STREAM_MAXLEN = 200_000


def run_stream_key(run_id: int) -> str:
    return f"trainyard:run:{run_id}:events"


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3, socket_timeout=10)


def decode_entry(fields: dict) -> tuple[str, dict]:
    kind = fields.get(b"kind", fields.get("kind", b""))
    data = fields.get(b"data", fields.get("data", b"{}"))
    kind = kind.decode() if isinstance(kind, bytes) else kind
    try:
        payload = json.loads(data)
    except (TypeError, ValueError):
        payload = {}
    return kind, payload
