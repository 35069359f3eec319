"""Leaderboard first page (issue 5, target 3): over 100,000 runs with 20 metrics each, p95 <= 150 ms
server time on PostgreSQL, and over 10,000 runs on the embedded SQLite default; side by side with
MLflow's search_runs (order by the metric, first page) on the same data.

    .venv/bin/python benchmarks/bench_leaderboard.py            # full: 100,000 runs on PostgreSQL, 10,000 on SQLite
    .venv/bin/python benchmarks/bench_leaderboard.py --quick    # 10,000 and 2,000 runs, fewer calls

Data (made once per size and kept for the next invocation; `--fresh` rebuilds it): one project, dataset,
model design and queue; N succeeded runs that differ by config in groups of 5 seeds (N/5 seed groups, 1%
archived), each with 20 RunMetric rows (last/min/max), written with COPY on PostgreSQL and bulk inserts on
SQLite, never through the API; a baseline pinned. MLflow's store gets the same runs: one run is made
through its API (create_run + log_batch of the same 20 metrics and the config as params) and cloned into
its tables (COPY / executemany), as peer-bench's bench_mlflow_listing.py does.

Measured for the first page (50 rows) of test_accuracy ranked by its best value, grouped by seed and per
run: the selector `leaderboard(...)` alone, and GET /api/leaderboards/ in process (Django test client:
server time, DRF and JSON included) and over HTTP from uvicorn (a kept-alive client, as browsers call).
MLflow: search_runs(order_by=["metrics.test_accuracy DESC"], max_results=50) through `mlflow server`
(client time) and SqlAlchemyStore.search_runs in process (server time). Each backend runs in a child
process of its own (Django is set up once per process).
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import math
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy",
           "test_macro_f1", "lr", "samples_per_s", "cpu_percent", "ram_mb", "gpu0_util", "gpu0_mem_mb",
           "gpu1_util", "gpu1_mem_mb", "gpu2_util", "gpu2_mem_mb", "gpu3_util", "gpu3_mem_mb", "val_macro_f1")
SEEDS = 5
PAGE = 50
OPTIMIZERS = ("sgd", "adam", "adamw", "adagrad", "rmsprop")


def group_config(group: int) -> dict:
    rng = random.Random(group)
    return {"optimizer": OPTIMIZERS[group % 5], "lr": round(10 ** rng.uniform(-4, -1), 6),
            "batch_size": rng.choice((32, 64, 128, 256)), "epochs": 10, "weight_decay": rng.choice((0, 1e-4, 1e-3)),
            "group": group}


def metric_values(group: int, seed: int) -> dict[str, tuple[float, float, float]]:
    """name -> (last, min, max); seeds of one group scatter around the group's quality."""
    quality = random.Random(group * 7919).uniform(0.5, 0.99)
    rng = random.Random(group * 31 + seed)
    values = {}
    for name in METRICS:
        if "loss" in name:
            last = max(0.01, 1.0 - quality + rng.gauss(0, 0.01))
            values[name] = (last, last - rng.uniform(0, 0.02), 2.3)
        elif "accuracy" in name or "f1" in name:
            last = min(1.0, quality + rng.gauss(0, 0.01))
            values[name] = (last, 0.1, min(1.0, last + rng.uniform(0, 0.01)))
        else:
            last = rng.uniform(0, 100)
            values[name] = (last, last * 0.5, last * 1.5)
    return values


# ----------------------------------------------------------------------------- Trainyard side (child)
def populate(runs: int) -> dict:
    from django.db import connection, transaction
    from django.utils import timezone

    from trainer_app.models import LeaderboardBaseline, Run, RunMetric, RunStatus

    fixtures = harness.bench_fixtures(f"lb{runs}")
    dataset = fixtures["dataset"]
    have = Run.objects.filter(dataset=dataset).count()
    metrics = RunMetric.objects.filter(dataset_id=dataset.pk).count()
    if have == runs and metrics == runs * len(METRICS):
        return {"fixtures": fixtures, "populated_s": None}
    started = time.perf_counter()
    RunMetric.objects.filter(dataset_id=dataset.pk).delete()
    Run.objects.filter(dataset=dataset).delete()
    now = timezone.now()
    objects = []
    for index in range(runs):
        group, seed = divmod(index, SEEDS)
        objects.append(Run(project=fixtures["project"], dataset=dataset, design=fixtures["design"],
                           queue=fixtures["queue"], created_by=fixtures["user"], name=f"lb-{index}",
                           status=RunStatus.SUCCEEDED, config={**group_config(group), "seed": seed},
                           config_key=hashlib.sha1(f"{runs}-{group}".encode()).hexdigest(),
                           archived=index % 100 == 99, created_at=now, step=1000, total_steps=1000, epoch=10))
    with transaction.atomic():
        insert_models(Run, objects)
        ids = dict(Run.objects.filter(dataset=dataset).values_list("name", "id"))
        rows = []
        for index, run in enumerate(objects):  # the summaries carry the run's config_key and archived flag
            group, seed = divmod(index, SEEDS)
            run_id = ids[f"lb-{index}"]
            for name, (last, low, high) in metric_values(group, seed).items():
                rows.append((run_id, dataset.pk, fixtures["project"].pk, run.config_key, run.archived, name, last,
                             1000, low, high, 100))
        insert_rows(RunMetric, ["run_id", "dataset_id", "project_id", "config_key", "archived", "name", "last",
                                "last_step", "min", "max", "count"], rows)
        best_key = hashlib.sha1(f"{runs}-0".encode()).hexdigest()
        LeaderboardBaseline.objects.update_or_create(dataset=dataset, metric="test_accuracy", defaults={
            "project": fixtures["project"], "config_key": best_key, "pinned_by": fixtures["user"]})
    if connection.vendor == "postgresql":  # what autovacuum does after a bulk load, done now
        with connection.cursor() as cursor:
            for model in (Run, RunMetric):
                cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")
    return {"fixtures": fixtures, "populated_s": time.perf_counter() - started}


def insert_models(model, objects: list) -> None:
    """COPY on PostgreSQL (each field prepared as Django would save it), bulk_create elsewhere."""
    from django.db import connection

    if connection.vendor != "postgresql":
        model.objects.bulk_create(objects, batch_size=2000)
        return
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    with connection.cursor() as cursor:
        with cursor.copy(f"COPY {model._meta.db_table} ({columns}) FROM STDIN") as copy:
            for obj in objects:
                copy.write_row([field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields])


def insert_rows(model, columns: list[str], rows: list[tuple]) -> None:
    from django.db import connection

    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join(["%s"] * len(columns))
            cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)


SUGGESTED_INDEXES = [f"CREATE INDEX IF NOT EXISTS bench_runmetric_{column}_run ON trainer_app_runmetric "
                     f"(dataset_id, name, {column}) INCLUDE (run_id)" for column in ("last", "min", "max")]


def suggested_indexes(create: bool) -> None:
    """What the report suggests for a migration (RunMetric's runmetric_last/min/max with include=["run_id"]),
    built in the benchmark database only for this measurement and dropped after it."""
    from django.db import connection

    with connection.cursor() as cursor:
        for statement in SUGGESTED_INDEXES:
            name = statement.split()[5]
            cursor.execute(statement if create else f"DROP INDEX IF EXISTS {name}")
        if create:
            cursor.execute("VACUUM ANALYZE trainer_app_runmetric")


def child(backend: str, runs: int, calls: int, with_indexes: bool) -> dict:
    name = f"trainyard_bench_lb{runs}"
    env = harness.setup_django(harness.database_url_for(backend, name))
    from django.conf import settings
    from django.test import Client

    from trainer_app.selectors.leaderboards import leaderboard

    settings.ALLOWED_HOSTS.append("testserver")
    prepared = populate(runs)
    with_indexes = with_indexes and backend == "postgres"
    suggested_indexes(create=with_indexes)
    fixtures = prepared["fixtures"]
    user, dataset = fixtures["user"], fixtures["dataset"]
    client = Client(headers={"Authorization": f"Token {fixtures['token']}"})
    results: dict = {"populated_s": prepared["populated_s"], "runs": runs, "backend": backend,
                     "suggested_indexes": with_indexes}
    with harness.Uvicorn(env, log_name=f"uvicorn-lb-{backend}") as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port)

        def over_http(query: str):
            if connection.sock is None:
                connection.connect()
            connection.request("GET", f"/api/leaderboards/?{query}",
                               headers={"Authorization": f"Token {fixtures['token']}"})
            response = connection.getresponse()
            body = response.read()
            assert response.status == 200, body[:300]

        for mode, grouped in (("grouped", True), ("per_run", False)):
            query = f"dataset={dataset.pk}&metric=test_accuracy&aggregate=best&group={'seed' if grouped else 'none'}"

            def selector(grouped=grouped):
                board = leaderboard(user=user, dataset=dataset, metric="test_accuracy", aggregate="best",
                                    group_seeds=grouped, offset=0, limit=PAGE)
                assert len(board.rows) == PAGE
                return board

            def in_process(query=query):
                response = client.get(f"/api/leaderboards/?{query}")
                assert response.status_code == 200, response.content[:300]

            board = selector()
            for function in (selector, in_process, lambda query=query: over_http(query)):  # warm-up
                function()
            figures, loads = {}, []
            for label, function in (("selector", selector), ("api_in_process", in_process),
                                    ("api_http", lambda query=query: over_http(query))):
                harness.wait_quiet(2.0)
                connection.close()  # uvicorn drops a connection idle for 5 s: start this block kept-alive
                over_http(query)
                with harness.LoadMonitor() as monitor:
                    figures[label] = harness.timed_ms(function, calls)
                loads.append(monitor.foreign)
            results[mode] = {"ms": figures, "foreign": loads, "total": board.total,
                             "first": board.rows[0].get("mean", board.rows[0].get("value"))}
        connection.close()
    if with_indexes:
        suggested_indexes(create=False)
    return results


# ----------------------------------------------------------------------------- MLflow side
def mlflow_prepare(backend: str, runs: int, fresh: bool) -> tuple[str, str]:
    """A store with one experiment holding `runs` runs like ours; returns (store uri, experiment id)."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    tag = f"lb{runs}"
    store_uri = harness.mlflow_store_uri(backend, tag, fresh=False)
    if not fresh:
        existing = mlflow_experiment(store_uri, runs)
        if existing:
            return store_uri, existing
    with harness.MlflowServer(backend, tag, fresh=True) as server:
        client = MlflowClient(server.url)
        experiment = client.create_experiment(f"leaderboard-{runs}")
        template = client.create_run(experiment, run_name="lb-0").info.run_id
        config = {**group_config(0), "seed": 0}
        client.log_batch(template, metrics=[Metric(name, last, int(time.time() * 1000), 1000)
                                            for name, (last, _, _) in metric_values(0, 0).items()],
                         params=[Param(key, str(value)) for key, value in config.items()])
        client.set_terminated(template)
    clone_mlflow_runs(server.store_uri, template, runs)
    return server.store_uri, experiment


def mlflow_experiment(store_uri: str, runs: int) -> str | None:
    import sqlalchemy as sa

    engine = sa.create_engine(store_uri)
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT experiment_id FROM experiments WHERE name = :name"),
                               {"name": f"leaderboard-{runs}"}).first()
            if row is None:
                return None
            count = conn.execute(sa.text("SELECT count(*) FROM runs WHERE experiment_id = :id"),
                                 {"id": row[0]}).scalar()
            return str(row[0]) if count == runs else None
    except sa.exc.SQLAlchemyError:
        return None
    finally:
        engine.dispose()


def clone_mlflow_runs(store_uri: str, template: str, runs: int) -> None:
    """Copies of the template run straight into MLflow's tables (new ids, our values for each run)."""
    import uuid

    import sqlalchemy as sa

    engine = sa.create_engine(store_uri)
    metadata = sa.MetaData()
    metadata.reflect(engine)
    tables = ("runs", "tags", "params", "metrics", "latest_metrics")
    with engine.begin() as conn:
        for name, table in metadata.tables.items():
            if name not in tables and "run_uuid" in table.c:
                count = conn.execute(sa.select(sa.func.count()).select_from(table)
                                     .where(table.c.run_uuid == template)).scalar()
                assert count == 0, f"the template run has rows in {name}: a clone would be incomplete"
        rows = {name: [dict(row._mapping) for row in conn.execute(
            sa.select(metadata.tables[name]).where(metadata.tables[name].c.run_uuid == template))] for name in tables}
    out: dict[str, list] = {name: [] for name in tables}
    for index in range(1, runs):
        group, seed = divmod(index, SEEDS)
        run_uuid = uuid.uuid4().hex
        values = metric_values(group, seed)
        config = {**group_config(group), "seed": seed}
        for name in tables:
            for template_row in rows[name]:
                row = {key: (value.replace(template, run_uuid) if isinstance(value, str) else value)
                       for key, value in template_row.items()}
                if name == "runs":
                    row["name"] = f"lb-{index}"
                    if index % 100 == 99:
                        row["lifecycle_stage"], row["deleted_time"] = "deleted", int(time.time() * 1000)
                elif name == "tags" and row["key"] == "mlflow.runName":
                    row["value"] = f"lb-{index}"
                elif name in ("metrics", "latest_metrics"):
                    row["value"] = values[row["key"]][0]
                elif name == "params":
                    row["value"] = str(config[row["key"]])
                out[name].append(row)
    write_mlflow_rows(engine, metadata, out)
    engine.dispose()


def write_mlflow_rows(engine, metadata, out: dict[str, list]) -> None:
    if engine.dialect.name != "postgresql":
        with engine.begin() as conn:
            for name, rows in out.items():
                for start in range(0, len(rows), 20_000):
                    conn.execute(metadata.tables[name].insert(), rows[start:start + 20_000])
        return
    import psycopg

    database = engine.url.database
    with psycopg.connect(f"{harness.PG_ADMIN_URL}/{database}") as conn, conn.cursor() as cursor:
        for name, rows in out.items():
            if not rows:
                continue
            columns = list(rows[0])
            quoted = ", ".join(f'"{column}"' for column in columns)
            with cursor.copy(f'COPY "{name}" ({quoted}) FROM STDIN') as copy:
                for row in rows:
                    copy.write_row([row[column] for column in columns])
        for name in out:
            cursor.execute(f'ANALYZE "{name}"')


def mlflow_measure(backend: str, runs: int, calls: int, fresh: bool) -> dict:
    from mlflow.entities import ViewType
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.tracking import MlflowClient

    started = time.perf_counter()
    store_uri, experiment = mlflow_prepare(backend, runs, fresh)
    prepared_s = time.perf_counter() - started
    order = ["metrics.test_accuracy DESC"]
    result: dict = {"prepared_s": prepared_s}
    with harness.MlflowServer(backend, f"lb{runs}", fresh=False) as server:
        client = MlflowClient(server.url)

        def over_http():
            page = client.search_runs([experiment], order_by=order, max_results=PAGE)
            assert len(page) == PAGE

        over_http()
        harness.wait_quiet(2.0)
        with harness.LoadMonitor() as monitor:
            result["http"] = harness.timed_ms(over_http, calls)
        result["http_foreign"] = monitor.foreign
    store = SqlAlchemyStore(store_uri, str(harness.scratch_dir() / "mlflow-artifacts-store"))

    def in_process():
        page = store.search_runs([experiment], "", ViewType.ACTIVE_ONLY, PAGE, order, None)
        assert len(page) == PAGE

    in_process()
    harness.wait_quiet(2.0)
    with harness.LoadMonitor() as monitor:
        result["in_process"] = harness.timed_ms(in_process, calls)
    result["in_process_foreign"] = monitor.foreign
    store.engine.dispose()
    return result


# ----------------------------------------------------------------------------- orchestration
def run_child(backend: str, runs: int, calls: int, fresh: bool, with_indexes: bool) -> dict:
    command = [harness.PYTHON, __file__, "--child", backend, "--child-runs", str(runs), "--calls", str(calls)]
    if fresh:
        command.append("--fresh")
    if with_indexes:
        command.append("--suggested-indexes")
    process = subprocess.run(command, cwd=harness.REPO, capture_output=True, text=True, timeout=1800, check=False)
    if process.returncode != 0:
        raise RuntimeError(f"{backend} child failed:\n{process.stderr[-3000:]}")
    return json.loads(process.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10,000 runs on PostgreSQL, 2,000 on SQLite, 5 calls")
    parser.add_argument("--pg-runs", type=int, help="runs on PostgreSQL (default 100,000; quick 10,000)")
    parser.add_argument("--sqlite-runs", type=int, help="runs on SQLite (default 10,000; quick 2,000)")
    parser.add_argument("--calls", type=int, help="timed calls per figure (default 30; quick 5)")
    parser.add_argument("--mlflow-calls", type=int, help="timed MLflow calls per figure (default 5; quick 2)")
    parser.add_argument("--backends", default="postgres,sqlite")
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--fresh", action="store_true", help="rebuild the data even if it is there")
    parser.add_argument("--suggested-indexes", action="store_true",
                        help="PostgreSQL: also measure with the covering indexes the report suggests (built in the "
                             "benchmark database for the measurement, then dropped)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-runs", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    calls = args.calls or (5 if args.quick else 30)
    if args.child:
        if args.fresh:
            name = f"trainyard_bench_lb{args.child_runs}"
            if args.child == "postgres":
                harness.ensure_pg_database(name, fresh=True)
            else:
                for suffix in ("", "-wal", "-shm"):
                    Path(str(harness.scratch_dir() / f"{name}.sqlite3") + suffix).unlink(missing_ok=True)
        print(json.dumps(child(args.child, args.child_runs, calls, args.suggested_indexes)))
        return
    sizes = {"postgres": args.pg_runs or (10_000 if args.quick else 100_000),
             "sqlite": args.sqlite_runs or (2_000 if args.quick else 10_000)}
    mlflow_calls = args.mlflow_calls or (2 if args.quick else 5)
    print(f"machine: {harness.machine_line()}; first page of {PAGE} rows, {calls} calls per figure")
    ours, theirs = {}, {}
    for backend in args.backends.split(","):
        started = time.perf_counter()
        ours[backend] = run_child(backend, sizes[backend], calls, args.fresh, False)
        populated = ours[backend]["populated_s"]
        print(f"[{backend}] {sizes[backend]:,} runs x {len(METRICS)} metrics "
              f"({f'populated in {populated:.0f} s' if populated else 'reused'}; child took "
              f"{time.perf_counter() - started:.0f} s)", flush=True)
        print_ours(backend, ours[backend])
        if args.suggested_indexes and backend == "postgres":
            ours["postgres+indexes"] = run_child(backend, sizes[backend], calls, False, True)
            print_ours("postgres+indexes", ours["postgres+indexes"])
        if not args.no_mlflow and harness.mlflow_available():
            theirs[backend] = mlflow_measure(backend, sizes[backend], mlflow_calls, args.fresh)
            for label in ("http", "in_process"):
                print(f"[{backend}] MLflow search_runs {label:10} {harness.describe(theirs[backend][label])}; "
                      f"foreign CPU {theirs[backend][label + '_foreign']:.2f}", flush=True)
            if theirs[backend]["prepared_s"] > 5:
                print(f"[{backend}] (MLflow store prepared in {theirs[backend]['prepared_s']:.0f} s)", flush=True)
    print()
    print("| backend | runs | figure | Trainyard grouped p95 | Trainyard per-run p95 | MLflow search_runs p95 | "
          "ratio (MLflow / Trainyard per-run) |")
    print("|---|---|---|---|---|---|---|")
    summary = []
    for variant, result in ours.items():
        backend = result["backend"]
        for label, mlflow_label in (("api_in_process", "in_process"), ("api_http", "http"), ("selector", None)):
            grouped = harness.percentile(result["grouped"]["ms"][label], 95)
            per_run = harness.percentile(result["per_run"]["ms"][label], 95)
            mlflow = (harness.percentile(theirs[backend][mlflow_label], 95)
                      if backend in theirs and mlflow_label else float("nan"))
            ratio = "—" if math.isnan(mlflow) else f"{mlflow / per_run:.0f}x"
            mlflow_text = "—" if math.isnan(mlflow) else f"{mlflow:,.1f} ms"
            print(f"| {variant} | {result['runs']:,} | {label} | {grouped:.1f} ms | {per_run:.1f} ms | "
                  f"{mlflow_text} | {ratio} |")
        worst = {mode: harness.percentile(result[mode]["ms"]["api_in_process"], 95) for mode in ("grouped", "per_run")}
        mlflow_server = (harness.percentile(theirs[backend]["in_process"], 95) if backend in theirs else float("nan"))
        verdicts = ", ".join(f"{mode} {value:.0f} ms {harness.verdict(value <= 150)}" for mode, value in worst.items())
        summary.append(f"{variant} {result['runs']:,} runs: server p95 {verdicts} (target <= 150 ms); MLflow "
                       f"{mlflow_server:,.0f} ms ({mlflow_server / worst['per_run']:.0f}x per-run)")
    print(f"SUMMARY leaderboard: {'; '.join(summary)}")


def print_ours(variant: str, result: dict) -> None:
    for mode in ("grouped", "per_run"):
        figures = result[mode]
        for label, samples in figures["ms"].items():
            print(f"[{variant}] Trainyard {mode:8} {label:15} {harness.describe(samples)}", flush=True)
        print(f"[{variant}] Trainyard {mode:8} rows ranked {figures['total']:,}; foreign CPU during the three "
              f"figures {[round(f, 2) for f in figures['foreign']]}", flush=True)


if __name__ == "__main__":
    main()
