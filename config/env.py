"""The one place that reads the environment.

Every value Trainyard takes from the environment is read through the helpers here, so that a
malformed value fails at start-up with one line that names the variable, what is wrong and how
to fix it (``ConfigError``), never with a traceback from deep inside a driver.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent

# Every variable the settings read, with what it is for. The README and the compose file are
# checked against this list by the tests, so documentation and deployment cannot drift from it.
KNOWN_VARIABLES: dict[str, str] = {
    "TRAINYARD_MODE": "`development` (default: embedded services, generated secrets) or `production`",
    "TRAINYARD_VAR_DIR": "where embedded data lives (SQLite file, Redis/FalkorDB data, media, logs); default ./var",
    "TRAINYARD_PORT": "port of the web server started by `make up` (default 8000)",
    "TRAINYARD_HOST": "address the web server started by `make up` binds (default 127.0.0.1)",
    "TRAINYARD_ADMIN_PASSWORD": "password of the seeded `admin` account (generated and printed when unset)",
    "TRAINYARD_WORKER_QUEUES": "queues the worker started by `make up` consumes (default default,cpu)",
    "TRAINYARD_LOGIN_FAILURE_LIMIT": "failed logins allowed per user and address before a lock-out (default 5)",
    "TRAINYARD_LOGIN_COOLOFF_MINUTES": "how long a lock-out lasts, in minutes (default 15)",
    "TRAINYARD_NODE_ADDRESS": "where the other nodes of a multi-node run reach this worker (default: its host name)",
    "TRAINYARD_RUN_GANG_TIMEOUT_SECONDS": "how long a multi-node run's node waits for its gang (default 120)",
    "TRAINYARD_RECONCILE_EVERY_S": "how often the reconciler looks for queued runs whose broker message was lost "
                                   "(default 15)",
    "TRAINYARD_RECONCILE_GRACE_S": "how long a queued run's message must have been missing before it is sent again "
                                   "(default 30)",
    "TRAINYARD_ENGINE_CPU_THREADS": "torch threads per training process on this worker (default 0: its CPU count "
                                    "divided by the run's processes per node); 1 where several runs share its CPUs",
    "TRAINYARD_RUN_HANG_TIMEOUT_S": "seconds without progress after which a run's engine counts as hung and is "
                                    "restarted from its checkpoint (default 600)",
    "SECRET_KEY": "Django's secret key; required in production, generated under var/ otherwise",
    "DEBUG": "`true` to show Django's debug pages (never in production)",
    "ALLOWED_HOSTS": "comma-separated host names the web server answers to",
    "CSRF_TRUSTED_ORIGINS": "comma-separated origins (https://host) trusted for CSRF behind a proxy",
    "SECURE_SSL_REDIRECT": "production: redirect plain HTTP to HTTPS (default true)",
    "DATABASE_URL": "SQL database, e.g. postgres://user:pass@host:5432/trainyard (default: SQLite under var/)",
    "REDIS_URL": "Celery broker and metric streams, e.g. redis://host:6379/0 (default: the bundled server)",
    "KG_URL": "knowledge graph: bolt://, neo4j://, neo4j+s:// or falkordb:// (default: the bundled FalkorDB)",
    "KG_USER": "user name for a Neo4j graph server (default neo4j)",
    "KG_PASSWORD": "password for a Neo4j graph server",
    "MEDIA_ROOT": "where uploaded datasets, canonical arrays and checkpoints are stored (default var/media)",
    "NEO4J_URI": "tests only: a Neo4j 5 server the graph-store contract tests also run against",
}


class ConfigError(Exception):
    """A setting is missing or malformed. The message is one line a person can act on."""


def get(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def get_bool(name: str, default: bool) -> bool:
    value = get(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean: set it to true or false")


def get_int(name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    value = get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a whole number: set it to e.g. {default}") from None
    if number < minimum or (maximum is not None and number > maximum):
        upper = f" and {maximum}" if maximum is not None else ""
        raise ConfigError(f"{name}={number} is out of range: set it between {minimum}{upper}")
    return number


def get_list(name: str, default: list[str]) -> list[str]:
    value = get(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, safe to show in pages, logs and errors."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _split(name: str, url: str, schemes: tuple[str, ...], example: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a non-numeric or out-of-range port
    except ValueError as error:
        raise ConfigError(f"{name}={mask_url(url)!r} is malformed ({error}): use the form {example}") from None
    if parts.scheme not in schemes:
        allowed = ", ".join(f"{scheme}://" for scheme in schemes)
        raise ConfigError(
            f"{name}={mask_url(url)!r} has scheme {parts.scheme + '://' if parts.scheme else 'none'}: "
            f"use one of {allowed} (e.g. {example})"
        )
    if parts.scheme != "sqlite" and not parts.hostname:
        raise ConfigError(f"{name}={mask_url(url)!r} names no host: use the form {example}")
    del port
    return parts


def database_config(url: str | None, var_dir: Path) -> dict:
    """Django's DATABASES['default'] from DATABASE_URL; SQLite in WAL mode under var/ by default."""
    import dj_database_url

    if url is None:
        return sqlite_config(var_dir / "trainyard.sqlite3")
    parts = _split(
        "DATABASE_URL",
        url,
        ("postgres", "postgresql", "pgsql", "sqlite"),
        "postgres://user:password@127.0.0.1:5432/trainyard or sqlite:////absolute/path.sqlite3",
    )
    if parts.scheme == "sqlite":
        path = parts.path
        if path in ("", "/"):
            raise ConfigError(f"DATABASE_URL={url!r} names no file: use sqlite:////absolute/path.sqlite3")
        return sqlite_config(Path(path[1:] if path.startswith("//") else path))
    if not parts.path.strip("/"):
        raise ConfigError(
            f"DATABASE_URL={mask_url(url)!r} names no database: add it after the port, e.g. .../trainyard"
        )
    config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    config.setdefault("OPTIONS", {})["connect_timeout"] = 5
    return config


def sqlite_config(path: Path) -> dict:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        "OPTIONS": {
            # WAL lets the web server, the worker and beat read while one of them writes.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
        "TEST": {"NAME": str(path.with_name(path.stem + "-test.sqlite3"))},
    }


def redis_url(url: str | None) -> str | None:
    if url is None:
        return None
    parts = _split("REDIS_URL", url, ("redis", "rediss", "unix"), "redis://127.0.0.1:6379/0")
    database = parts.path.strip("/")
    if database and not database.isdigit():
        raise ConfigError(f"REDIS_URL={mask_url(url)!r}: the database after the port must be a number, e.g. /0")
    return url


@dataclass(frozen=True)
class GraphURL:
    url: str
    backend: str  # "neo4j" or "falkordb"


def graph_url(url: str | None) -> GraphURL | None:
    if url is None:
        return None
    parts = _split(
        "KG_URL",
        url,
        ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc", "falkordb", "falkordbs", "redis"),
        "bolt://neo4j:7687 or falkordb://127.0.0.1:6379",
    )
    backend = "falkordb" if parts.scheme in {"falkordb", "falkordbs", "redis"} else "neo4j"
    return GraphURL(url=url, backend=backend)


def var_dir() -> Path:
    return Path(get("TRAINYARD_VAR_DIR", str(BASE_DIR / "var"))).resolve()


def ensure_writable_dir(path: Path, purpose: str) -> Path:
    """Create ``path`` if needed and prove it is writable, or fail with the fix."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-probe-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise ConfigError(
            f"{path} ({purpose}) is not writable: {error.strerror or error}; "
            f"fix its permissions or point TRAINYARD_VAR_DIR at a writable directory"
        ) from None
    return path


def secret_key(mode: str, directory: Path) -> str:
    key = get("SECRET_KEY")
    if key:
        return key
    if mode == "production":
        raise ConfigError("SECRET_KEY is not set: production needs a long random value, e.g. from "
                          "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`")
    # Embedded mode: a key generated once and kept, so sessions survive a restart.
    path = directory / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        ensure_writable_dir(directory, "embedded data directory")
        key = secrets.token_urlsafe(50)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(key)
        return key
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}; fix its permissions") from None
