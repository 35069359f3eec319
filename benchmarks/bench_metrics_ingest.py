"""Metric ingestion into PostgreSQL (issue 5, target 1: >= 50,000 points/s persisted), side by side
with MLflow's tracking server doing the same work (log_batch, 1,000 points per call) in the same run.

    .venv/bin/python benchmarks/bench_metrics_ingest.py            # full: 500,000 points per repetition
    .venv/bin/python benchmarks/bench_metrics_ingest.py --quick    # 50,000 points, one repetition

Three figures, each the median over repetitions (a fresh run each time):
  * persister alone: the run's Redis Stream is filled first, then `metrics_persist(run_id=…)` is timed
    until every entry is in SQL (MetricPoint rows and the RunMetric last/min/max summaries);
  * end to end: the engine's own `RedisStreamSink` (what rank 0 uses: a writer thread XADDing in pipelined
    batches) runs in a separate process and emits the events as fast as it can while this process runs
    the persister in a loop, as the supervising task does; timed from the first emit to the last row
    committed, then every point is counted in SQL (exactly N, no duplicate, none lost);
  * MLflow: `mlflow server` (default workers) on its own PostgreSQL database, MlflowClient.log_batch with
    1,000 points per call (the only fast path it has; see shared/peer-bench/RESULTS.md, finding B).
Each event is {"step", "epoch", "time", "values": {10 metric names}}: 10 points per stream entry.
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

NAMES = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "samples_per_s", "cpu_percent",
         "ram_mb", "gpu0_util", "gpu0_mem_mb")

WRITER = r"""
import json, math, sys, time
from trainer_app.engine.metrics import RedisStreamSink
url, key, events = sys.argv[1], sys.argv[2], int(sys.argv[3])
names = json.loads(sys.argv[4])
sink = RedisStreamSink(url, key, maxlen=200_000)
print("ready", flush=True)
sys.stdin.readline()
started = time.perf_counter()
for step in range(events):
    sink.emit("metrics", {"step": step, "epoch": step // 1000, "time": time.time(),
                          "values": {name: math.sin(step * 0.001 + i) + i for i, name in enumerate(names)}})
emitted = time.perf_counter() - started
sink.flush(timeout=600)
print(json.dumps({"emit_s": emitted, "written_s": time.perf_counter() - started}), flush=True)
sink.close()
"""


def event(step: int) -> dict:
    return {"kind": "metrics", "data": json.dumps({"step": step, "epoch": step // 1000, "time": time.time(),
                                                   "values": {name: random.random() for name in NAMES}})}


def fill_stream(client, key: str, events: int) -> None:
    client.delete(key)
    for start in range(0, events, 1000):
        pipeline = client.pipeline(transaction=False)
        for step in range(start, min(start + 1000, events)):
            pipeline.xadd(key, event(step), maxlen=200_000, approximate=True)
        pipeline.execute()


def drop_run(run_id: int) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("trainer_app_metricpoint", "trainer_app_runmetric"):
            cursor.execute(f"DELETE FROM {table} WHERE run_id = %s", [run_id])
    from trainer_app.models import Run

    Run.objects.filter(id=run_id).delete()


def check_persisted(run_id: int, points: int) -> None:
    from trainer_app.models import MetricPoint, RunMetric

    stored = MetricPoint.objects.filter(run_id=run_id).count()
    summaries = {row.name: row for row in RunMetric.objects.filter(run_id=run_id)}
    if stored != points or set(summaries) != set(NAMES):
        raise RuntimeError(f"run {run_id}: {stored} points stored of {points}; summaries for {sorted(summaries)}")
    if any(row.count != points // len(NAMES) for row in summaries.values()):
        raise RuntimeError(f"run {run_id}: summary counts {[row.count for row in summaries.values()]}")


def persister_alone(fixtures, client, events: int) -> tuple[float, object]:
    from trainer_app.services.metrics import metrics_persist
    from trainer_app.streams import run_stream_key

    run = harness.new_run(fixtures)
    key = run_stream_key(run.pk)
    fill_stream(client, key, events)
    harness.wait_quiet()
    with harness.LoadMonitor() as monitor:
        started = time.perf_counter()
        read = metrics_persist(run_id=run.pk)
        seconds = time.perf_counter() - started
    assert read == events, (read, events)
    check_persisted(run.pk, events * len(NAMES))
    client.delete(key)
    drop_run(run.pk)
    return events * len(NAMES) / seconds, monitor


def end_to_end(fixtures, client, events: int, env: dict) -> tuple[float, float, object]:
    from trainer_app.services.metrics import metrics_persist
    from trainer_app.streams import run_stream_key

    run = harness.new_run(fixtures)
    key = run_stream_key(run.pk)
    client.delete(key)
    writer = subprocess.Popen([harness.PYTHON, "-c", WRITER, env["REDIS_URL"], key, str(events), json.dumps(NAMES)],
                              cwd=harness.REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "ready"
    harness.wait_quiet()
    read = 0
    with harness.LoadMonitor() as monitor:
        started = time.perf_counter()
        writer.stdin.write("go\n")
        writer.stdin.flush()
        deadline = started + 600
        while read < events and time.perf_counter() < deadline:
            got = metrics_persist(run_id=run.pk)
            read += got
            if got == 0:
                time.sleep(0.005)
        seconds = time.perf_counter() - started
    timings = json.loads(writer.stdout.readline())
    writer.wait(timeout=30)
    assert read == events, (read, events)
    check_persisted(run.pk, events * len(NAMES))
    client.delete(key)
    drop_run(run.pk)
    return events * len(NAMES) / seconds, events * len(NAMES) / timings["written_s"], monitor


def mlflow_log_batch(points: int, reps: int) -> tuple[list[float], list]:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    rates, monitors = [], []
    with harness.MlflowServer("postgres", "ingest") as server:
        client = MlflowClient(tracking_uri=server.url)
        experiment = client.create_experiment(f"ingest-{int(time.time())}")
        warm = client.create_run(experiment).info.run_id
        client.log_batch(warm, metrics=[Metric(name, 0.0, 0, step) for step in range(100) for name in NAMES])
        for _ in range(reps):
            run_id = client.create_run(experiment).info.run_id
            now = int(time.time() * 1000)
            batches, steps_per_call = [], 1000 // len(NAMES)
            for first in range(0, points // len(NAMES), steps_per_call):
                batches.append([Metric(name, random.random(), now + step, step)
                                for step in range(first, first + steps_per_call) for name in NAMES])
            harness.wait_quiet()
            with harness.LoadMonitor() as monitor:
                started = time.perf_counter()
                for batch in batches:
                    client.log_batch(run_id, metrics=batch)
                seconds = time.perf_counter() - started
            stored = len(client.get_metric_history(run_id, NAMES[0]))
            assert stored == points // len(NAMES), stored
            rates.append(points / seconds)
            monitors.append(monitor)
    return rates, monitors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="50,000 points, one repetition, 10,000 MLflow points")
    parser.add_argument("--points", type=int, help="points per repetition (default 500,000; quick 50,000)")
    parser.add_argument("--mlflow-points", type=int, help="points per MLflow repetition (default 50,000; quick 10,000)")
    parser.add_argument("--reps", type=int, help="repetitions (default 3; quick 1)")
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--database-url", help=f"default {harness.DEFAULT_DATABASE_URL}")
    args = parser.parse_args()
    points = args.points or (50_000 if args.quick else 500_000)
    mlflow_points = args.mlflow_points or (10_000 if args.quick else 50_000)
    reps = args.reps or (1 if args.quick else 3)
    events = points // len(NAMES)
    points = events * len(NAMES)

    env = harness.setup_django(args.database_url)
    from django.db import connection

    from trainer_app.streams import redis_client

    print(f"machine: {harness.machine_line()}; database {connection.vendor} {connection.settings_dict['NAME']}; "
          f"{points:,} points per repetition ({events:,} stream entries of {len(NAMES)} values), {reps} repetitions")
    fixtures = harness.bench_fixtures("ingest")
    client = redis_client()
    alone, alone_load, e2e, writer_rates, e2e_load = [], [], [], [], []
    persister_alone(fixtures, client, min(events, 2_000))  # warm-up: connections, code paths
    for rep in range(reps):
        rate, monitor = persister_alone(fixtures, client, events)
        alone.append(rate)
        alone_load.append(monitor)
        rate, writer_rate, monitor = end_to_end(fixtures, client, events, env)
        e2e.append(rate)
        writer_rates.append(writer_rate)
        e2e_load.append(monitor)
        print(f"rep {rep + 1}: persister alone {alone[-1]:,.0f} points/s (foreign {alone_load[-1].foreign:.2f} cores); "
              f"end to end {e2e[-1]:,.0f} points/s, rank-0 writer alone {writer_rate:,.0f} points/s "
              f"(foreign {monitor.foreign:.2f} cores)", flush=True)

    mlflow_rates, mlflow_load = [], []
    if not args.no_mlflow and harness.mlflow_available():
        mlflow_rates, mlflow_load = mlflow_log_batch(mlflow_points, reps)
        for rep, (rate, monitor) in enumerate(zip(mlflow_rates, mlflow_load)):
            print(f"MLflow rep {rep + 1}: log_batch(1000) {rate:,.0f} points/s ({mlflow_points:,} points, "
                  f"foreign {monitor.foreign:.2f} cores)", flush=True)

    ours_e2e, ours_alone = harness.median(e2e), harness.median(alone)
    theirs = harness.median(mlflow_rates) if mlflow_rates else float("nan")
    print()
    print("| figure | median | min | max |")
    print("|---|---|---|---|")
    for label, values in (("Trainyard end to end (rank-0 XADD -> rows in PostgreSQL), points/s", e2e),
                          ("Trainyard persister alone (stream -> rows), points/s", alone),
                          ("rank-0 RedisStreamSink alone (emit -> XADDed), points/s", writer_rates),
                          ("MLflow log_batch, 1,000 points/call, server on PostgreSQL, points/s", mlflow_rates)):
        if values:
            print(f"| {label} | {harness.median(values):,.0f} | {min(values):,.0f} | {max(values):,.0f} |")
    print(f"load during Trainyard end to end: {harness.load_note(e2e_load)}")
    print(f"load during persister alone: {harness.load_note(alone_load)}")
    if mlflow_load:
        print(f"load during MLflow: {harness.load_note(mlflow_load)}")
    ratio = f"{ours_e2e / theirs:.1f}x MLflow" if mlflow_rates else "MLflow not measured"
    print(f"SUMMARY metrics_ingest: end to end {ours_e2e:,.0f} points/s, persister alone {ours_alone:,.0f} points/s "
          f"(target >= 50,000: {harness.verdict(ours_e2e >= 50_000)}); MLflow log_batch {theirs:,.0f} points/s; "
          f"ratio {ratio} (persister alone {ours_alone / theirs if mlflow_rates else float('nan'):.1f}x); "
          f"{points:,} points x {reps} reps on {connection.vendor}")


if __name__ == "__main__":
    main()
