"""The production deployment files: docker/compose.yml parses, sets only variables the settings read,
reserves GPUs for the GPU worker, and its images start commands that exist in this checkout."""
from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from config.env import KNOWN_VARIABLES

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE_FILE = DOCKER / "compose.yml"
ENTRYPOINT = DOCKER / "entrypoint.sh"
DOCKERFILES = [DOCKER / "Dockerfile", DOCKER / "Dockerfile.gpu"]
APP_SERVICES = ["web", "beat", "worker-cpu", "worker-gpu"]
# What compose needs to interpolate the file; the app's own defaults cover the rest.
REQUIRED_SECRETS = {"SECRET_KEY": "s" * 60, "KG_PASSWORD": "graph-password", "POSTGRES_PASSWORD": "sql-password"}


def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def environment_of(service: dict) -> dict[str, str | None]:
    """A service's `environment`, in either of compose's two spellings (mapping or KEY=VALUE list)."""
    environment = service.get("environment") or {}
    if isinstance(environment, dict):
        return environment
    pairs = (item.split("=", 1) for item in environment)
    return {pair[0]: (pair[1] if len(pair) > 1 else None) for pair in pairs}


def compose_tool() -> list[str] | None:
    """`docker compose` when the plugin is installed, else the standalone docker-compose."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def run_compose_config(tmp_path: Path, **environment: str) -> subprocess.CompletedProcess:
    tool = compose_tool()
    if tool is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed (make test installs docker-compose)")
    # A clean environment and an empty env file: only what the test sets counts, so neither a developer's
    # exports nor a docker/.env next to the compose file can make it pass.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), **environment}
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    command = [*tool, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "--profile", "gpu", "config"]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


# --- (a) the compose tool accepts the file ----------------------------------------------------------

def test_compose_file_parses_with_the_docker_tool(tmp_path):
    result = run_compose_config(tmp_path, **REQUIRED_SECRETS)
    assert result.returncode == 0, result.stderr
    assert "worker-gpu" in result.stdout


def test_compose_refuses_to_start_without_secret_key(tmp_path):
    secrets = {name: value for name, value in REQUIRED_SECRETS.items() if name != "SECRET_KEY"}
    result = run_compose_config(tmp_path, **secrets)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


# --- (b) only variables the settings read -------------------------------------------------------------

@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_service_sets_only_known_variables(service):
    definition = compose()["services"][service]
    unknown = sorted(set(environment_of(definition)) - set(KNOWN_VARIABLES))
    assert not unknown, f"{service} sets variables config/env.py does not read: {unknown}"
    # An env_file would slip variables past this check.
    assert "env_file" not in definition


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_service_runs_in_production_mode_against_the_compose_services(service):
    environment = environment_of(compose()["services"][service])
    assert environment["TRAINYARD_MODE"] == "production"
    assert environment["SECRET_KEY"].startswith("${SECRET_KEY:?")  # no default secret, ever
    assert environment["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in environment["DATABASE_URL"]
    assert environment["REDIS_URL"] == "redis://redis:6379/0"
    assert environment["KG_URL"] == "bolt://neo4j:7687"
    assert "media:" + environment["MEDIA_ROOT"] in compose()["services"][service]["volumes"]


def test_workers_consume_their_queues():
    services = compose()["services"]
    assert environment_of(services["worker-cpu"])["TRAINYARD_WORKER_QUEUES"] == "default,cpu"
    assert environment_of(services["worker-gpu"])["TRAINYARD_WORKER_QUEUES"] == "gpu"


def test_app_services_wait_for_healthy_databases():
    services = compose()["services"]
    for name in ("postgres", "redis", "neo4j"):
        assert services[name]["healthcheck"]["test"], name
    for service in APP_SERVICES:
        depends_on = services[service]["depends_on"]
        assert {name: rule["condition"] for name, rule in depends_on.items()} == {
            "postgres": "service_healthy", "redis": "service_healthy", "neo4j": "service_healthy"}


def test_neo4j_bolt_is_published_on_the_loopback_only():
    ports = compose()["services"]["neo4j"]["ports"]
    assert "127.0.0.1:7687:7687" in ports
    assert all(str(port).startswith("127.0.0.1:") for port in ports)


# --- (c) the GPU worker gets the GPUs --------------------------------------------------------------

def test_gpu_worker_reserves_nvidia_gpus():
    worker = compose()["services"]["worker-gpu"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert {"driver": "nvidia", "capabilities": ["gpu"], "count": "all"} in devices
    assert worker["build"]["dockerfile"] == "docker/Dockerfile.gpu"


# --- (d) the images start what exists ----------------------------------------------------------------

def dockerfile_instruction(path: Path, name: str) -> str:
    """The last `NAME …` instruction of a Dockerfile (the one that takes effect), continuation lines joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    matches = [line.split(None, 1)[1] for line in text.splitlines() if line.upper().startswith(name + " ")]
    assert matches, f"{path.name} has no {name}"
    return matches[-1].strip()


def entrypoint_subcommands() -> set[str]:
    labels = re.findall(r"^\s{2}([a-z][a-z-]*)\)\s*$", ENTRYPOINT.read_text(), flags=re.MULTILINE)
    return set(labels)


def test_entrypoint_is_executable_and_valid_bash():
    assert os.access(ENTRYPOINT, os.X_OK), "docker/entrypoint.sh must be executable (chmod +x)"
    result = subprocess.run(["bash", "-n", str(ENTRYPOINT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert {"web", "worker", "beat", "migrate", "manage", "healthcheck"} <= entrypoint_subcommands()


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_dockerfile_runs_the_entrypoint_with_a_known_subcommand(dockerfile):
    assert ast.literal_eval(dockerfile_instruction(dockerfile, "ENTRYPOINT")) == ["/app/docker/entrypoint.sh"]
    command = ast.literal_eval(dockerfile_instruction(dockerfile, "CMD"))
    assert command[0] in entrypoint_subcommands()


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_dockerfile_copies_only_paths_that_exist(dockerfile):
    for line in re.sub(r"\\\n", " ", dockerfile.read_text()).splitlines():
        if not line.startswith("COPY ") or "--from=" in line:
            continue
        *sources, _destination = line.split()[1:]
        for source in sources:
            assert (REPO / source).exists(), f"{dockerfile.name} copies {source}, which the repository lacks"


def test_dockerfiles_use_python_311_and_a_cuda_base():
    cpu = DOCKERFILES[0].read_text()
    gpu = DOCKERFILES[1].read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in cpu and "ARG PYTHON_IMAGE=python:3.11-slim" in gpu
    assert re.search(r"ARG CUDA_IMAGE=nvidia/cuda:1[23]\.[\d.]+-(cudnn-)?runtime-ubuntu2[24]\.04", gpu)
    for text in (cpu, gpu):
        assert "pip install ." in text and "npm ci" in text and "collectstatic --noinput" in text
        assert "USER 10001:10001" in text  # numeric, so orchestrators can verify it is not root


def test_compose_commands_and_healthcheck_are_entrypoint_subcommands():
    services = compose()["services"]
    for service in APP_SERVICES:
        assert services[service]["command"][0] in entrypoint_subcommands(), service
    assert services["web"]["healthcheck"]["test"] == ["CMD", "/app/docker/entrypoint.sh", "healthcheck"]


def defines(path: Path, name: str) -> bool:
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(target, "id", None) == name for target in node.targets):
            return True
        if isinstance(node, ast.ClassDef) and node.name == name:
            return True
    return False


def test_gunicorn_serves_the_asgi_application_with_uvicorn_workers():
    text = ENTRYPOINT.read_text()
    application = re.search(r"exec gunicorn (\S+):(\S+)", text)
    assert application, "the web subcommand must exec gunicorn MODULE:ATTRIBUTE"
    module, attribute = application.groups()
    assert module == "config.asgi"
    assert defines(REPO / (module.replace(".", "/") + ".py"), attribute)
    worker_class = re.search(r"-k (\S+)\.(\w+)", text)
    assert worker_class, "gunicorn must be given a worker class with -k"
    worker_module, worker_name = worker_class.groups()
    worker = getattr(importlib.import_module(worker_module), worker_name, None)
    assert worker is not None, f"{worker_module}.{worker_name} is not installed"
    assert "uvicorn" in worker.__module__


def test_celery_app_named_by_the_entrypoint_exists():
    assert "celery -A config " in ENTRYPOINT.read_text()
    assert defines(REPO / "config" / "celery.py", "app")
