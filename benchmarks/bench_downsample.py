"""Long series (issue 5, target 5): one run with 1,000,000 points in a series, downsampled to 2,000
points in <= 300 ms, end to end through GET /api/runs/{id}/metrics/?names=…&points=2000 and the
downsampling alone; beside it MLflow's own answer to "a 2,000-point chart of a long series"
(get-history-bulk-interval, which samples steps) on the same points.

    .venv/bin/python benchmarks/bench_downsample.py                     # PostgreSQL, 1,000,000 points
    .venv/bin/python benchmarks/bench_downsample.py --backends postgres,sqlite
    .venv/bin/python benchmarks/bench_downsample.py --quick             # 200,000 points, fewer calls

The run (made once per size and kept; `--fresh` rebuilds it) has three series written with COPY /
bulk inserts: train_loss and lr with N points each, val_accuracy with N/100; train_loss has 20 spikes
planted at random steps, and each figure checks how many of them the 2,000 points kept. Timed: the
downsampling alone (`downsample_min_max` on arrays already in memory), the selector `metric_series`
(database read included), the API in process (Django test client: server time) and over HTTP from
uvicorn (kept-alive connection). MLflow: the same train_loss points cloned into its `metrics` table on
PostgreSQL and read through `mlflow server` with GET /ajax-api/2.0/mlflow/metrics/get-history-bulk-interval
(max_results=2,000, what its UI draws) and, in --full-history mode, get_metric_history (every point).
"""
from __future__ import annotations

import argparse
import http.client
import json
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

SPIKES = 20
POINTS = 2000


def series_values(count: int) -> tuple[list[float], dict[int, float]]:
    import numpy as np

    rng = np.random.default_rng(5)
    steps = np.arange(count)
    values = 2.0 * np.exp(-steps / (count / 5)) + rng.normal(0, 0.02, count)
    spikes = {int(step): float(40.0 + index) for index, step in enumerate(rng.choice(count, SPIKES, replace=False))}
    for step, value in spikes.items():
        values[step] = value
    return values.tolist(), spikes


def populate(points: int) -> dict:
    from django.db import connection, transaction

    from trainer_app.models import MetricPoint, Run

    fixtures = harness.bench_fixtures(f"downsample{points}")
    run = Run.objects.filter(project=fixtures["project"], name=f"downsample-{points}").first()
    expected = 2 * points + points // 100
    if run and MetricPoint.objects.filter(run=run).count() == expected:
        return {"fixtures": fixtures, "run": run, "populated_s": None}
    started = time.perf_counter()
    if run:
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {MetricPoint._meta.db_table} WHERE run_id = %s", [run.pk])
        run.delete()
    run = harness.new_run(fixtures, name=f"downsample-{points}", status="succeeded")
    loss, _ = series_values(points)
    rows = []
    for step in range(points):  # in step order, as the persister writes them
        rows.append((run.pk, "train_loss", step, loss[step], step / 1000, 1.7e9 + step * 0.01))
        rows.append((run.pk, "lr", step, 0.1 * (1 - step / points), step / 1000, 1.7e9 + step * 0.01))
        if step % 100 == 0:
            rows.append((run.pk, "val_accuracy", step, random.random(), step / 1000, 1.7e9 + step * 0.01))
    columns = ["run_id", "name", "step", "value", "epoch", "time"]
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.copy(f"COPY {MetricPoint._meta.db_table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cursor.executemany(f"INSERT INTO {MetricPoint._meta.db_table} ({', '.join(columns)}) "
                               f"VALUES (%s, %s, %s, %s, %s, %s)", rows)
    # what the persister keeps beside the points (or migration 0005 builds for older ones): per-metric
    # summaries and per-block extremes
    from trainer_app.models import RunMetric
    from trainer_app.services.metrics import metric_rollups_rebuild

    for name in ("train_loss", "lr", "val_accuracy"):
        values = [row[3] for row in rows if row[1] == name]
        RunMetric.objects.create_for(run, name=name,
                                 last=values[-1], last_step=points - 1 if name != "val_accuracy" else (points - 1) // 100 * 100,
                                 min=min(values), max=max(values), count=len(values))
        metric_rollups_rebuild(run_id=run.pk, name=name)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM ANALYZE {MetricPoint._meta.db_table}")
    return {"fixtures": fixtures, "run": run, "populated_s": time.perf_counter() - started}


SUGGESTED_INDEX = ("CREATE INDEX IF NOT EXISTS bench_metricpoint_series ON trainer_app_metricpoint "
                   "(run_id, name, step) INCLUDE (value)")


def suggested_index(create: bool) -> None:
    """What the report suggests for a migration (MetricPoint's (run, name, step) constraint with
    include=["value"]), built in the benchmark database only for this measurement and dropped after it."""
    from django.db import connection

    with connection.cursor() as cursor:
        if create:
            cursor.execute(SUGGESTED_INDEX)
            cursor.execute("VACUUM ANALYZE trainer_app_metricpoint")
        else:
            cursor.execute("DROP INDEX IF EXISTS bench_metricpoint_series")


def child(backend: str, points: int, calls: int, with_index: bool = False) -> dict:
    env = harness.setup_django(harness.database_url_for(backend, f"trainyard_bench_ds{points}"))
    import numpy as np
    from django.conf import settings
    from django.test import Client

    from trainer_app.models import MetricPoint
    from trainer_app.selectors.metrics import downsample_min_max, metric_series

    settings.ALLOWED_HOSTS.append("testserver")
    prepared = populate(points)
    with_index = with_index and backend == "postgres"
    suggested_index(create=with_index)
    run, token = prepared["run"], prepared["fixtures"]["token"]
    _, spikes = series_values(points)
    rows = np.array(MetricPoint.objects.filter(run=run, name="train_loss").order_by("step")
                    .values_list("step", "value"), dtype=np.float64)
    steps, values = rows[:, 0], rows[:, 1]
    url = f"/api/runs/{run.pk}/metrics/?names=train_loss&points={POINTS}"
    client = Client(headers={"Authorization": f"Token {token}"})
    kept: dict[str, int] = {}

    def spikes_kept(label, series_steps, series_values_) -> None:
        found = dict(zip((int(s) for s in series_steps), series_values_))
        kept[label] = sum(1 for step, value in spikes.items() if found.get(step) == value)
        assert len(series_steps) <= POINTS, len(series_steps)

    def alone():
        out_steps, out_values = downsample_min_max(steps, values, POINTS)
        spikes_kept("downsampling alone", out_steps, out_values)

    def selector():
        series = metric_series(run=run, names=["train_loss"], points=POINTS)["train_loss"]
        spikes_kept("metric_series", series["step"], series["value"])

    def in_process():
        response = client.get(url)
        assert response.status_code == 200, response.content[:300]
        series = response.json()["series"]["train_loss"]
        spikes_kept("API in process", series["step"], series["value"])

    results: dict = {"populated_s": prepared["populated_s"], "points": len(steps), "ms": {}, "foreign": {}}
    with harness.Uvicorn(env, log_name=f"uvicorn-ds-{backend}") as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port)

        def over_http():
            if connection.sock is None:
                connection.connect()
            connection.request("GET", url, headers={"Authorization": f"Token {token}"})
            response = connection.getresponse()
            body = response.read()
            assert response.status == 200, body[:300]
            series = json.loads(body)["series"]["train_loss"]
            spikes_kept("API over HTTP", series["step"], series["value"])

        for label, function in (("downsampling alone", alone), ("metric_series", selector),
                                ("API in process", in_process), ("API over HTTP", over_http)):
            function()  # warm-up
            harness.wait_quiet(2.0)
            connection.close()
            if label == "API over HTTP":
                over_http()  # uvicorn closes idle connections after 5 s: start kept-alive
            with harness.LoadMonitor() as monitor:
                results["ms"][label] = harness.timed_ms(function, calls)
            results["foreign"][label] = monitor.foreign
        connection.close()
    results["spikes_kept"] = kept
    if with_index:
        suggested_index(create=False)
    return results


# ----------------------------------------------------------------------------- MLflow side
def mlflow_measure(points: int, calls: int, full_history: bool) -> dict:
    import requests
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    loss, spikes = series_values(points)
    result: dict = {}
    with harness.MlflowServer("postgres", f"ds{points}") as server:
        client = MlflowClient(server.url)
        experiment = client.create_experiment("downsample")
        run_id = client.create_run(experiment).info.run_id
        client.log_batch(run_id, metrics=[Metric("train_loss", loss[0], 1_700_000_000_000, 0)])
        started = time.perf_counter()
        import psycopg

        database = server.store_uri.rsplit("/", 1)[1]
        with psycopg.connect(f"{harness.PG_ADMIN_URL}/{database}") as conn, conn.cursor() as cursor:
            with cursor.copy("COPY metrics (key, value, timestamp, run_uuid, step, is_nan) FROM STDIN") as copy:
                for step in range(1, points):
                    copy.write_row(("train_loss", loss[step], 1_700_000_000_000 + step, run_id, step, False))
            cursor.execute("UPDATE latest_metrics SET step = %s, value = %s WHERE run_uuid = %s",
                           [points - 1, loss[-1], run_id])
            cursor.execute("ANALYZE metrics")
        result["prepared_s"] = time.perf_counter() - started
        session = requests.Session()

        def bulk_interval():
            response = session.get(f"{server.url}/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval",
                                   params={"run_ids": run_id, "metric_key": "train_loss", "max_results": POINTS})
            response.raise_for_status()
            metrics = response.json().get("metrics", [])
            found = {m["step"]: m["value"] for m in metrics}
            result["bulk_interval_points"] = len(metrics)
            result["bulk_interval_spikes_kept"] = sum(1 for step, value in spikes.items() if found.get(step) == value)

        bulk_interval()
        harness.wait_quiet(2.0)
        with harness.LoadMonitor() as monitor:
            result["bulk_interval_ms"] = harness.timed_ms(bulk_interval, calls)
        result["foreign"] = monitor.foreign
        if full_history:
            started = time.perf_counter()
            history = client.get_metric_history(run_id, "train_loss")
            result["full_history_ms"] = (time.perf_counter() - started) * 1000
            result["full_history_points"] = len(history)
    return result


def run_child(backend: str, points: int, calls: int, fresh: bool, with_index: bool = False) -> dict:
    command = [harness.PYTHON, __file__, "--child", backend, "--points", str(points), "--calls", str(calls)]
    if fresh:
        command.append("--fresh")
    if with_index:
        command.append("--suggested-index")
    process = subprocess.run(command, cwd=harness.REPO, capture_output=True, text=True, timeout=1800, check=False)
    if process.returncode != 0:
        raise RuntimeError(f"{backend} child failed:\n{process.stderr[-3000:]}")
    return json.loads(process.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200,000 points, 5 calls")
    parser.add_argument("--points", type=int, help="points in the series (default 1,000,000; quick 200,000)")
    parser.add_argument("--calls", type=int, help="timed calls per figure (default 20; quick 5)")
    parser.add_argument("--backends", default="postgres")
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--full-history", action="store_true",
                        help="also time MLflow's get_metric_history of every point (slow: ~100 s per 1,000,000)")
    parser.add_argument("--fresh", action="store_true", help="rebuild the run even if it is there")
    parser.add_argument("--suggested-index", action="store_true",
                        help="PostgreSQL: also measure with the covering index the report suggests (built in the "
                             "benchmark database for the measurement, then dropped)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    points = args.points or (200_000 if args.quick else 1_000_000)
    calls = args.calls or (5 if args.quick else 20)
    if args.child:
        name = f"trainyard_bench_ds{points}"
        if args.fresh and args.child == "postgres":
            harness.ensure_pg_database(name, fresh=True)
        elif args.fresh:
            for suffix in ("", "-wal", "-shm"):
                Path(str(harness.scratch_dir() / f"{name}.sqlite3") + suffix).unlink(missing_ok=True)
        print(json.dumps(child(args.child, points, calls, args.suggested_index)))
        return
    print(f"machine: {harness.machine_line()}; {points:,} points -> {POINTS:,}, {calls} calls per figure")
    ours = {}
    variants = [(backend, backend, False) for backend in args.backends.split(",")]
    if args.suggested_index and "postgres" in args.backends.split(","):
        variants.insert(1, ("postgres+index", "postgres", True))
    for variant, backend, with_index in variants:
        started = time.perf_counter()
        ours[variant] = result = run_child(backend, points, calls, args.fresh and not with_index, with_index)
        populated = result["populated_s"]
        print(f"[{variant}] run with {result['points']:,} train_loss points "
              f"({f'populated in {populated:.0f} s' if populated else 'reused'}; child took "
              f"{time.perf_counter() - started:.0f} s)", flush=True)
        for label, samples in result["ms"].items():
            print(f"[{variant}] {label:20} {harness.describe(samples)}; spikes kept "
                  f"{result['spikes_kept'][label]}/{SPIKES}; foreign CPU {result['foreign'][label]:.2f}", flush=True)
    theirs = None
    if not args.no_mlflow and harness.mlflow_available():
        theirs = mlflow_measure(points, calls, args.full_history)
        print(f"MLflow get-history-bulk-interval (max_results={POINTS}) over HTTP: "
              f"{harness.describe(theirs['bulk_interval_ms'])}; {theirs['bulk_interval_points']} points returned, "
              f"spikes kept {theirs['bulk_interval_spikes_kept']}/{SPIKES}; foreign CPU {theirs['foreign']:.2f} "
              f"(store prepared in {theirs['prepared_s']:.0f} s)", flush=True)
        if "full_history_ms" in theirs:
            print(f"MLflow get_metric_history (every point): {theirs['full_history_ms']:,.0f} ms for "
                  f"{theirs['full_history_points']:,} points", flush=True)
    summary = []
    for backend, result in ours.items():
        http_p95 = harness.percentile(result["ms"]["API over HTTP"], 95)
        server_p95 = harness.percentile(result["ms"]["API in process"], 95)
        alone_p95 = harness.percentile(result["ms"]["downsampling alone"], 95)
        summary.append(f"{backend}: API over HTTP p95 {http_p95:.0f} ms, in process {server_p95:.0f} ms, downsampling "
                       f"alone {alone_p95:.1f} ms (target <= 300 ms: {harness.verdict(http_p95 <= 300)}); spikes kept "
                       f"{result['spikes_kept']['API over HTTP']}/{SPIKES}")
    if theirs:
        mlflow_p95 = harness.percentile(theirs["bulk_interval_ms"], 95)
        ours_p95 = harness.percentile(next(iter(ours.values()))["ms"]["API over HTTP"], 95)
        summary.append(f"MLflow bulk-interval p95 {mlflow_p95:.0f} ms ({mlflow_p95 / ours_p95:.1f}x ours), spikes kept "
                       f"{theirs['bulk_interval_spikes_kept']}/{SPIKES}")
    print(f"SUMMARY downsample ({points:,} points -> {POINTS:,}): {'; '.join(summary)}")


if __name__ == "__main__":
    main()
