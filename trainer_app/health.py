"""Health of each component the app depends on: the SQL database, the broker, the graph, the workers."""
from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.db import connection

from config.env import mask_url


def one_line(text: str) -> str:
    """Drivers' messages span lines; a status cell and a start-up error get one."""
    return " ".join(text.split())


def _timed(check: Callable[[], dict]) -> dict:
    started = time.perf_counter()
    try:
        report = {"ok": True, **check()}
    except Exception as exc:  # every failure becomes a report, the health page itself never fails
        report = {"ok": False, "error": one_line(f"{type(exc).__name__}: {exc}")}
    report["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return report


def database_url() -> str:
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{database['NAME']}"
    user = database.get("USER") or ""
    password = ":***" if database.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{database.get('HOST')}:{database.get('PORT') or 5432}/{database['NAME']}"


def check_database() -> dict:
    report = {"url": database_url(), "vendor": connection.vendor}

    def probe() -> dict:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return report

    return {**report, **_timed(probe)}


def check_broker() -> dict:
    import redis

    report = {"url": mask_url(settings.CELERY_BROKER_URL)}

    def probe() -> dict:
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
        return report

    return {**report, **_timed(probe)}


def check_graph() -> dict:
    from kg_app.store import get_graph_store

    try:
        store = get_graph_store()
    except Exception as exc:
        return {"ok": False, "url": mask_url(settings.KG_URL), "latency_ms": 0.0, "error": one_line(str(exc))}
    try:
        report = store.health()
        if "error" in report:
            report["error"] = one_line(report["error"])
        from django.db import DatabaseError

        from kg_app.services import outbox_lag

        try:
            report["sync"] = outbox_lag()  # how far the projection is behind SQL
        except DatabaseError:  # before the first migrate (`up` checks the graph before migrating)
            pass
        return report
    finally:
        store.close()


def check_workers() -> dict:
    from trainer_app.selectors import workers_online

    def probe() -> dict:
        names = sorted(workers_online().values_list("name", flat=True))
        report = {"online": len(names), "names": names}
        if not names:
            report["ok"] = False
            report["error"] = ("no worker has sent a heartbeat in the last "
                               f"{settings.WORKER_OFFLINE_AFTER_SECONDS} s: start one with "
                               "`celery -A config worker -Q default,cpu` (make up starts one)")
        return report

    return _timed(probe)


def health_report() -> dict:
    """``{"database", "broker", "graph", "workers"}``, each ``{"ok", "latency_ms", ...}``."""
    return {
        "database": check_database(),
        "broker": check_broker(),
        "graph": check_graph(),
        "workers": check_workers(),
    }
