"""Issue 8: a placement decision p95 <= 50 ms with 100 simulated workers of 8 GPUs and 10,000 queued jobs.

A placement decision is what a worker does when a delivery reaches it (trainer_app/services/steering.
run_claim_in_order, then runs_preempt_for when nothing could start): find the first waiting run of the queue, up
to the delivered one, that fits this worker's free GPUs (priority, then queue order); claim it with
services/runs.run_claim (still queued? queue under its max_concurrent? lock the worker's row, pick the GPUs,
claim with its CUDA_VISIBLE_DEVICES); if nothing started, see whether a preemption would make room.
Here: 100 worker rows as GPU nodes' heartbeats write them (8 GPUs each), 10,000 queued runs asking for 1, 2,
4 or 8 GPUs, and runs already holding half the fleet's GPUs; then 300 deliveries to random workers, timed one
by one (claimed or refused: both are decisions). Then the fleet page for those 100 workers, each with 15
minutes of heartbeat samples, server time in process. PostgreSQL, then SQLite.

    .venv/bin/python benchmarks/bench_placement.py [--backends postgres,sqlite]
"""
from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

WORKERS, GPUS, QUEUED, DECISIONS = 100, 8, 10_000, 300


def child(backend: str) -> None:
    harness.setup_django(harness.database_url_for(backend, "trainyard_bench_placement"))
    from django.utils import timezone

    from trainer_app.models import Run, RunStatus, Worker, WorkerStatus
    from trainer_app.services.steering import run_claim_in_order, runs_preempt_for

    fixtures = harness.bench_fixtures("placement")
    generator = random.Random(7)
    Run.objects.filter(project=fixtures["project"]).delete()
    Worker.objects.filter(name__startswith="bench-gpu").delete()
    now = timezone.now()
    workers = Worker.objects.bulk_create([Worker(
        name=f"bench-gpu{index}@node{index}", hostname=f"node{index}", status=WorkerStatus.ONLINE, queues=["gpu"],
        cpu_count=64, ram_mb=512_000, started_at=now, last_heartbeat=now,
        gpus=[{"index": gpu, "name": "NVIDIA H200", "memory_total_mb": 143771} for gpu in range(GPUS)])
        for index in range(WORKERS)])
    common = {"project": fixtures["project"], "dataset": fixtures["dataset"], "design": fixtures["design"],
              "queue": fixtures["queue"], "created_by": fixtures["user"]}
    running = []
    for worker in workers:  # half of every node busy: GPUs 0-3 held by two 2-GPU runs
        for devices in ("0,1", "2,3"):
            running.append(Run(**common, status=RunStatus.RUNNING, worker=worker,
                               resources={"nproc_per_node": 2, "gpus_per_node": 2, "cuda_visible_devices": devices}))
    Run.objects.bulk_create(running, batch_size=2_000)
    queued = Run.objects.bulk_create([Run(**common, status=RunStatus.QUEUED, resources={
        "nproc_per_node": 1, "gpus_per_node": generator.choice((1, 1, 2, 4, 8))}) for _ in range(QUEUED)],
        batch_size=2_000)
    if backend == "postgres":
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    timings, claimed = [], 0
    for attempt in range(DECISIONS):
        run, worker = generator.choice(queued), generator.choice(workers)
        started = time.perf_counter()
        started_run = run_claim_in_order(run_id=run.pk, owner=f"bench:{attempt}", worker_name=worker.name)
        if started_run is None:
            runs_preempt_for(run_id=run.pk, worker_name=worker.name)
        claimed += started_run is not None
        timings.append((time.perf_counter() - started) * 1000)
    print(f"[{backend}] {WORKERS} workers x {GPUS} GPUs, {QUEUED:,} queued, {len(running)} running: "
          f"{DECISIONS} decisions ({claimed} claimed, {DECISIONS - claimed} refused) "
          f"{harness.describe(timings)}; p95 {harness.percentile(timings, 95):.1f} ms", flush=True)
    print(f"RESULT {backend} {harness.percentile(timings, 95):.2f}")
    fleet_page(workers)


def fleet_page(workers) -> None:
    """The fleet page for these 100 workers, each with 15 minutes of heartbeat samples: server time in
    process (Django's test client, an admin session), 30 calls."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    from trainer_app.services.fleet import SAMPLES_KEPT, worker_sample_record

    settings.ALLOWED_HOSTS.append("testserver")
    generator = random.Random(3)
    for worker in workers:
        for _ in range(SAMPLES_KEPT):
            worker_sample_record(worker=worker, gpus=[{"utilization": generator.randint(0, 100),
                                                       "memory_used_mb": generator.randint(0, 143771)}
                                                      for _ in range(GPUS)])
    admin, _ = get_user_model().objects.get_or_create(username="bench-admin", defaults={"is_staff": True})
    client = Client()
    client.force_login(admin)
    page = client.get("/fleet/", HTTP_HX_REQUEST="true")
    assert page.status_code == 200 and page.content.count(b'data-testid="gpu"') == WORKERS * GPUS
    timings = harness.timed_ms(lambda: client.get("/fleet/", HTTP_HX_REQUEST="true"), 30)
    print(f"[fleet page] {WORKERS} workers x {GPUS} GPUs with {SAMPLES_KEPT} samples each: "
          f"{harness.describe(timings)}", flush=True)
    print(f"PAGE {harness.percentile(timings, 95):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="postgres,sqlite")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    print(harness.machine_line())
    results, pages = {}, {}
    for backend in args.backends.split(","):
        output = subprocess.run([sys.executable, __file__, "--child", backend], capture_output=True, text=True)
        print(output.stdout.strip() or output.stderr[-3000:])
        for line in output.stdout.splitlines():
            if line.startswith("RESULT"):
                results[backend] = float(line.split()[2])
            if line.startswith("PAGE"):
                pages[backend] = float(line.split()[1])
    print("SUMMARY placement: " + ", ".join(f"{backend} p95 {value:.1f} ms" for backend, value in results.items())
          + f" (target <= 50 ms: {'MET' if results and max(results.values()) <= 50 else 'MISSED'}); fleet page "
          + ", ".join(f"{backend} p95 {value:.0f} ms" for backend, value in pages.items())
          + f" (target <= 300 ms: {'MET' if pages and max(pages.values()) <= 300 else 'MISSED'})")


if __name__ == "__main__":
    main()
