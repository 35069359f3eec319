#!/usr/bin/env bash
# Trainyard's container entry point: one subcommand per kind of process (see docs/operations.md).
#
#   web          apply migrations, then serve the ASGI app with gunicorn + uvicorn workers on :8000
#   worker       a Celery worker (prefork pool) on the queues in TRAINYARD_WORKER_QUEUES
#   beat         the Celery beat scheduler (run exactly one)
#   migrate      apply database migrations and exit
#   manage ARGS  any `python manage.py` command, e.g. `manage seed` or `manage createsuperuser`
#   healthcheck  exit 0 when the web server on :8000 answers /api/health/ (used by compose)
#
# Extra arguments after web, worker and beat are passed on to gunicorn or celery. Anything else is
# run as given (`docker compose run --rm web bash`).
set -euo pipefail

APP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$APP_DIR"
# The checkout, not an installed copy, is what runs: settings resolve templates, static sources and
# frontend/node_modules relative to it.
export PYTHONPATH="$APP_DIR${PYTHONPATH:+:$PYTHONPATH}"

command="${1:-web}"
[[ $# -gt 0 ]] && shift

case "$command" in
  web)
    python manage.py migrate --noinput
    # Uvicorn workers: the live-metric views are async Server-Sent Events, which only an ASGI server
    # streams. Workers heartbeat through /dev/shm, not the container's overlay file system.
    exec gunicorn config.asgi:application \
      -k uvicorn_worker.UvicornWorker \
      --bind 0.0.0.0:8000 \
      --workers 2 \
      --worker-tmp-dir /dev/shm \
      --graceful-timeout 30 \
      --keep-alive 5 \
      --access-logfile - \
      --error-logfile - \
      "$@"
    ;;
  worker)
    queues="${TRAINYARD_WORKER_QUEUES:-default,cpu}"
    # Prefork, because a run task starts torchrun as a subprocess in its own process group; the node
    # name carries the queues so the fleet page tells a GPU worker from a CPU one on the same host.
    exec celery -A config worker \
      --queues "$queues" \
      --hostname "${queues//,/-}@%h" \
      --pool prefork \
      --without-gossip \
      --without-mingle \
      --loglevel INFO \
      "$@"
    ;;
  beat)
    # The schedule file lives under TRAINYARD_VAR_DIR/run (settings.CELERY_BEAT_SCHEDULE_FILENAME).
    mkdir -p "${TRAINYARD_VAR_DIR:-$APP_DIR/var}/run"
    exec celery -A config beat --loglevel INFO "$@"
    ;;
  migrate)
    exec python manage.py migrate --noinput "$@"
    ;;
  manage)
    exec python manage.py "$@"
    ;;
  healthcheck)
    # Any answer from the app counts (503 means a dependency is down, which the report itself shows);
    # the Host header is one the app accepts, and the health path is exempt from the HTTPS redirect.
    exec python - <<'PYTHON'
import http.client
import os
import sys

hosts = [host.strip().lstrip(".") for host in os.environ.get("ALLOWED_HOSTS", "").split(",")]
host = next((host for host in hosts if host and host != "*"), "localhost")
try:
    connection = http.client.HTTPConnection("127.0.0.1", 8000, timeout=8)
    connection.request("GET", "/api/health/", headers={"Host": host, "X-Forwarded-Proto": "https"})
    status = connection.getresponse().status
except OSError as error:
    sys.exit(f"web server not answering: {error}")
sys.exit(0 if status in (200, 503) else f"/api/health/ answered HTTP {status}")
PYTHON
    ;;
  *)
    exec "$command" "$@"
    ;;
esac
