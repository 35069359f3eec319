"""config.env turns every malformed setting into one line that names it and says how to fix it."""
from pathlib import Path

import pytest

from config import env
from config.env import ConfigError


def test_mask_url_hides_only_the_password():
    assert env.mask_url("postgres://bob:s3cret@db:5432/x") == "postgres://bob:***@db:5432/x"
    assert env.mask_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("mysql://db/x", "use one of postgres://"),
        ("postgres://db:notaport/x", "malformed"),
        ("postgres://user@db:5432", "names no database"),
        ("postgres:///x", "names no host"),
        ("sqlite://", "names no file"),
    ],
)
def test_malformed_database_url_names_the_variable_and_the_fix(url, fragment, tmp_path):
    with pytest.raises(ConfigError) as error:
        env.database_config(url, tmp_path)
    assert "DATABASE_URL" in str(error.value) and fragment in str(error.value)
    assert "\n" not in str(error.value)


def test_database_password_never_appears_in_errors(tmp_path):
    with pytest.raises(ConfigError) as error:
        env.database_config("mysql://u:hunter2@db/x", tmp_path)
    assert "hunter2" not in str(error.value)


def test_default_database_is_sqlite_in_wal_mode_under_var(tmp_path):
    config = env.database_config(None, tmp_path)
    assert config["ENGINE"].endswith("sqlite3") and config["NAME"] == str(tmp_path / "trainyard.sqlite3")
    assert "journal_mode=WAL" in config["OPTIONS"]["init_command"]


def test_postgres_url_parses_to_django_settings(tmp_path):
    config = env.database_config("postgres://u:p@db.internal:5433/trainyard", tmp_path)
    assert (config["HOST"], config["PORT"], config["NAME"], config["USER"]) == ("db.internal", 5433, "trainyard", "u")


@pytest.mark.parametrize(("url", "fragment"), [("http://x:6379", "scheme"), ("redis://x:6379/zero", "must be a number"),
                                               ("redis://:99999", "malformed")])
def test_malformed_redis_url_is_refused(url, fragment):
    with pytest.raises(ConfigError, match="REDIS_URL") as error:
        env.redis_url(url)
    assert fragment in str(error.value)


@pytest.mark.parametrize(("url", "backend"), [("bolt://neo4j:7687", "neo4j"), ("neo4j+s://h:7687", "neo4j"),
                                              ("neo4j://h", "neo4j"), ("falkordb://127.0.0.1:6379", "falkordb")])
def test_graph_url_picks_the_backend_by_scheme(url, backend):
    assert env.graph_url(url).backend == backend


def test_unknown_graph_scheme_lists_the_accepted_ones():
    with pytest.raises(ConfigError) as error:
        env.graph_url("http://neo4j:7474")
    assert "KG_URL" in str(error.value) and "bolt://" in str(error.value) and "falkordb://" in str(error.value)


def test_numbers_and_booleans_are_checked(monkeypatch):
    monkeypatch.setenv("TRAINYARD_PORT", "eighty")
    with pytest.raises(ConfigError, match="TRAINYARD_PORT='eighty' is not a whole number"):
        env.get_int("TRAINYARD_PORT", 8000)
    monkeypatch.setenv("TRAINYARD_PORT", "70000")
    with pytest.raises(ConfigError, match="out of range"):
        env.get_int("TRAINYARD_PORT", 8000, minimum=1, maximum=65535)
    monkeypatch.setenv("DEBUG", "maybe")
    with pytest.raises(ConfigError, match="not a boolean"):
        env.get_bool("DEBUG", False)


def test_unwritable_directory_names_the_path_and_the_fix(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError) as error:
        env.ensure_writable_dir(blocker / "var", "data directory")
    assert str(blocker / "var") in str(error.value) and "TRAINYARD_VAR_DIR" in str(error.value)


def test_secret_key_is_required_in_production(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="SECRET_KEY is not set"):
        env.secret_key("production", tmp_path)


def test_embedded_secret_key_is_generated_once_and_kept(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    first = env.secret_key("development", tmp_path)
    assert len(first) >= 50 and env.secret_key("development", tmp_path) == first
    assert (Path(tmp_path) / "secret_key").stat().st_mode & 0o777 == 0o600


def test_engine_threads_share_the_cpus_among_a_runs_processes_unless_an_admin_set_them(settings):
    import os

    from trainer_app.runner import engine_threads

    settings.ENGINE_CPU_THREADS = 0
    cores = os.cpu_count() or 1
    assert engine_threads(1) == cores and engine_threads(cores * 2) == 1
    settings.ENGINE_CPU_THREADS = 3
    assert engine_threads(1) == 3 and engine_threads(4) == 3
