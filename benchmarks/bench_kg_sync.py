"""Knowledge graph sync (issue 7): `kg_rebuild` end to end from SQL (nodes/s, target >= 5,000) and the
sync lag while 10 runs/s change (p95, target <= 2 s), against the bundled FalkorDB and PostgreSQL.

    .venv/bin/python benchmarks/bench_kg_sync.py                      # 20,000 runs, 30 s of changes
    .venv/bin/python benchmarks/bench_kg_sync.py --runs 5000 --seconds 10

Rebuild: N runs with two checkpoints each are bulk-inserted once (kept between invocations), then
graph_rebuild reads every row and writes the graph. Lag: a thread creates 10 runs/s, each followed by a
checkpoint (through save(), so the outbox rows are written by the signals as in production) while the
main thread calls graph_sync every --every seconds, as beat does; an object's lag runs from its
created_at to the processed_at of the first event that wrote it.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402


def seed_runs(fixtures: dict, runs: int) -> None:
    from trainer_app.models import Checkpoint, Run, RunStatus

    have = Run.objects.filter(project=fixtures["project"]).count()
    if have >= runs:
        return
    batch = [Run(project=fixtures["project"], dataset=fixtures["dataset"], design=fixtures["design"],
                 queue=fixtures["queue"], created_by=fixtures["user"], status=RunStatus.SUCCEEDED, name=f"seeded {n}",
                 config={"optimizer": "adamw", "lr": 0.001}, resources={"nproc_per_node": 2},
                 summary={"val_accuracy": n / runs}) for n in range(have, runs)]
    created = Run.objects.bulk_create(batch, batch_size=2000)
    Checkpoint.objects.bulk_create([Checkpoint(run=run, epoch=epoch, step=epoch * 10, path="x.safetensors")
                                    for run in created for epoch in (1, 2)], batch_size=4000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=float, default=10, help="runs created per second")
    parser.add_argument("--every", type=float, default=1.0, help="seconds between sync passes (beat)")
    args = parser.parse_args()
    harness.setup_django(harness.database_url_for("postgres", "trainyard_bench_kg"))
    from django.db import connection
    from django.utils import timezone

    from config.embedded import start_bundled_redis
    from kg_app.models import OutboxEvent
    from kg_app.services import graph_rebuild, graph_sync
    from kg_app.store import get_graph_store
    from trainer_app.models import Checkpoint

    directory = Path(tempfile.mkdtemp(prefix="bench-kg-sync-"))
    port = harness.free_port()
    server = start_bundled_redis(port=port, data_dir=directory, log_file=directory / "falkordb.log")
    try:
        store = get_graph_store(f"falkordb://127.0.0.1:{port}", graph_name="bench")
        fixtures = harness.bench_fixtures("kg")
        seed_runs(fixtures, args.runs)
        started = time.perf_counter()
        counts = graph_rebuild(store=store)
        seconds = time.perf_counter() - started
        print(f"kg_rebuild: {counts['nodes']:,} nodes, {counts['relationships']:,} relationships in {seconds:.1f} s "
              f"= {counts['nodes'] / seconds:,.0f} nodes/s")

        graph_sync(store=store)  # rows bulk-inserted just before the rebuild fall in the catch-up overlap
        first_event = (OutboxEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0)
        stop = threading.Event()

        changed: list[tuple[str, str, object]] = []

        def change():
            interval = 1 / args.rate
            next_at = time.monotonic()
            while not stop.is_set():
                run = harness.new_run(fixtures, name="live", config={"optimizer": "adam"})
                checkpoint = Checkpoint.objects.create(run=run, epoch=1, step=1, path="x.safetensors")
                changed.append(("run", str(run.pk), run.created_at))
                changed.append(("checkpoint", str(checkpoint.pk), checkpoint.created_at))
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))
            connection.close()

        writer = threading.Thread(target=change)
        writer.start()
        passes = []
        until = time.monotonic() + args.seconds
        while time.monotonic() < until:
            began = time.perf_counter()
            graph_sync(store=store)
            passes.append((time.perf_counter() - began) * 1000)
            time.sleep(max(0.0, args.every - (time.perf_counter() - began)))
        stop.set()
        writer.join()
        graph_sync(store=store)
        # An object's lag: from its change to the first sync pass that wrote it to the graph.
        first_written: dict[tuple[str, str], object] = {}
        for entity, object_id, processed in OutboxEvent.objects.filter(id__gt=first_event).values_list(
                "entity", "object_id", "processed_at"):
            if processed and ((entity, object_id) not in first_written or processed < first_written[entity, object_id]):
                first_written[entity, object_id] = processed
        lags = [(first_written[entity, object_id] - created).total_seconds()
                for entity, object_id, created in changed if (entity, object_id) in first_written]
        events = OutboxEvent.objects.filter(id__gt=first_event).count()
        pending = OutboxEvent.objects.filter(processed_at__isnull=True).count()
        print(f"sync pass every {args.every} s: {harness.describe(passes)}")
        print(f"{events:,} outbox events for {len(changed):,} changed objects")
        print(f"lag over {len(lags):,} objects at {args.rate:g} runs/s: p50 {harness.percentile(lags, 50):.2f} s, "
              f"p95 {harness.percentile(lags, 95):.2f} s, max {max(lags):.2f} s; pending after: {pending}")
        print(f"SUMMARY rebuild_nodes_per_s={counts['nodes'] / seconds:.0f} lag_p95_s={harness.percentile(lags, 95):.2f} "
              f"every_s={args.every} at={timezone.now():%Y-%m-%d}")
        store.close()
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
