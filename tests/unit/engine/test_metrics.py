"""Metric sinks: a Redis Stream read back in order without duplicates, JSON lines, fan-out, and no blocking."""
import json
import time
import uuid

import pytest
import redis

from trainer_app.engine.metrics import EventWriter, JsonlSink, MetricSink, RedisStreamSink, SinkGroup

REDIS_URL = "redis://127.0.0.1:6379/10"


@pytest.fixture
def stream():
    client = redis.Redis.from_url(REDIS_URL)
    key = f"trainyard:test:{uuid.uuid4().hex}:events"
    yield client, key
    client.delete(key)


def test_the_redis_sink_writes_events_a_reader_gets_back_in_order_without_duplicates(stream):
    client, key = stream
    sink = RedisStreamSink(REDIS_URL, key, maxlen=10_000, batch=100)
    events = EventWriter(sink)
    started = time.perf_counter()
    for step in range(1, 2001):
        events.metrics(step=step, epoch=1, values={"train_loss": 1 / step, "lr": 0.1})
    emitting = time.perf_counter() - started
    events.status("succeeded", "done")
    events.close()
    entries = client.xrange(key)
    assert len(entries) == 2001
    kinds = [fields[b"kind"].decode() for _, fields in entries]
    assert kinds == ["metrics"] * 2000 + ["status"]
    steps = [json.loads(fields[b"data"])["step"] for _, fields in entries[:-1]]
    assert steps == list(range(1, 2001))
    ids = [tuple(int(part) for part in entry_id.split(b"-")) for entry_id, _ in entries]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert emitting < 1.0, "emit must not wait on Redis"


def test_the_redis_stream_is_capped_approximately(stream):
    client, key = stream
    sink = RedisStreamSink(REDIS_URL, key, maxlen=1000, batch=500)
    for step in range(5000):
        sink.emit("metrics", {"step": step})
    sink.close()
    assert 1000 <= client.xlen(key) < 2000


def test_an_unreachable_redis_never_blocks_emit_and_flush_gives_up():
    sink = RedisStreamSink("redis://127.0.0.1:1/0", "nowhere", maxlen=1000)
    started = time.perf_counter()
    for step in range(100):
        sink.emit("metrics", {"step": step})
    assert time.perf_counter() - started < 0.5
    sink.close(timeout=0.5)
    assert time.perf_counter() - started < 5


def test_jsonl_and_group_sinks_fan_out_and_non_finite_values_are_left_out(tmp_path):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    events = EventWriter(SinkGroup([JsonlSink(first), JsonlSink(second), MetricSink()]))
    events.metrics(step=3, epoch=1, values={"train_loss": float("nan"), "lr": 0.5})
    events.metrics(step=4, epoch=1, values={"train_loss": float("inf")})
    events.summary(step=4, state="diverged")
    events.close()
    lines = [json.loads(line) for line in first.read_text().splitlines()]
    assert first.read_text() == second.read_text()
    assert lines[0] == {"kind": "metrics", "data": {**lines[0]["data"], "values": {"lr": 0.5}}}
    assert [line["kind"] for line in lines] == ["metrics", "summary"]
    assert lines[1]["data"]["values"] == {"lr": 0.5}


def test_system_metrics_are_sampled_once_per_step_that_moved():
    from trainer_app.engine.system import SystemMonitor

    steps, points = iter([0, 5, 5, 9] + [9] * 1000), []
    monitor = SystemMonitor(interval=0.02, current_step=lambda: (next(steps), 1),
                            emit=lambda step, epoch, values: points.append((step, values)))
    monitor.start()
    time.sleep(0.3)
    monitor.stop()
    assert [step for step, _ in points] == [5, 9]
    assert {"cpu_percent", "ram_mb"} <= set(points[0][1]) and points[0][1]["ram_mb"] > 10


def test_while_redis_is_away_flush_returns_at_once_and_close_still_waits():
    sink = RedisStreamSink("redis://127.0.0.1:1/0", "nowhere", maxlen=1000)
    sink.emit("metrics", {"step": 1})
    deadline = time.monotonic() + 5
    while not sink._failing and time.monotonic() < deadline:  # the writer's first try failed
        time.sleep(0.01)
    started = time.perf_counter()
    sink.flush(timeout=10)  # at each epoch's end: training must not wait for Redis
    assert time.perf_counter() - started < 0.5
    sink.close(timeout=0.5)  # the last events: worth waiting a little for
    assert time.perf_counter() - started >= 0.5
