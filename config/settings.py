"""Django settings for Trainyard, all read from the environment through ``config.env``.

Two modes: ``development`` (the default, what ``make up`` runs: embedded SQLite, the bundled
Redis/FalkorDB, generated secrets) and ``production`` (every secret required, HTTPS enforced).
"""
from __future__ import annotations

import json

from config import env

BASE_DIR = env.BASE_DIR
MODE = env.get("TRAINYARD_MODE", "development")
if MODE not in {"development", "production"}:
    raise env.ConfigError(f"TRAINYARD_MODE={MODE!r} is unknown: set it to development or production")
PRODUCTION = MODE == "production"
VAR_DIR = env.var_dir()
if not PRODUCTION:  # the embedded stack keeps its database, secret key and services' data here
    env.ensure_writable_dir(VAR_DIR, "Trainyard's data directory")

SECRET_KEY = env.secret_key(MODE, VAR_DIR)
DEBUG = env.get_bool("DEBUG", False)
if PRODUCTION and DEBUG:
    raise env.ConfigError("DEBUG=true is refused in production: unset DEBUG or set TRAINYARD_MODE=development")
ALLOWED_HOSTS = env.get_list("ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]"])
if PRODUCTION and not ALLOWED_HOSTS:
    raise env.ConfigError("ALLOWED_HOSTS is not set: production needs the host names it serves, e.g. trainyard.example.com")
CSRF_TRUSTED_ORIGINS = env.get_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "axes",
    "trainer_app",
    "kg_app",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "frontend.context_processors.navigation",
            ],
        },
    },
]

# --- SQL database: the source of truth --------------------------------------------------
DATABASES = {"default": env.database_config(env.get("DATABASE_URL"), VAR_DIR)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Covering indexes (`include`) are a PostgreSQL speed-up; SQLite builds them without the extra columns.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

# --- Embedded services ------------------------------------------------------------------
# `manage.py up` starts the bundled Redis+FalkorDB on a free port and records it here, so that
# every other command (shell, migrate, a second worker) finds the running embedded stack.
EMBEDDED_STATE_FILE = VAR_DIR / "run" / "embedded.json"


def _embedded_url(key: str) -> str | None:
    try:
        return json.loads(EMBEDDED_STATE_FILE.read_text()).get(key)
    except (OSError, ValueError):
        return None


# --- Redis: Celery broker, metric streams, cache ----------------------------------------
REDIS_URL = env.redis_url(env.get("REDIS_URL")) or _embedded_url("redis_url") or "redis://127.0.0.1:6379/0"
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A Redis outage or restart must not end a worker or its runs (docs/operations.md, tests/integration/
# test_fleet_redis_restart.py): reconnect for as long as it takes (Celery's default gives up after 100 tries and
# the worker exits), and keep supervising the running runs meanwhile (Celery 6 is to cancel them by default;
# their liveness is the lease in SQL, not the broker's acknowledgement).
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 5}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Short control tasks get their own queue and worker (`manage.py up` starts one), so runs that fill the
# training worker's slots never starve a sweep's controller.
CELERY_TASK_ROUTES = {"trainer_app.tasks.sweep_step": {"queue": "control"},
                      "trainer_app.tasks.sweeps_tick": {"queue": "control"},
                      "trainer_app.tasks.runs_reconcile": {"queue": "control"},
                      "trainer_app.tasks.runs_preempt": {"queue": "control"}}
CELERY_BEAT_SCHEDULE = {
    "sweeps-tick": {"task": "trainer_app.tasks.sweeps_tick", "schedule": 3.0},
    "fleet-mark-offline": {"task": "trainer_app.tasks.fleet_mark_offline", "schedule": 10.0},
    "runs-reap": {"task": "trainer_app.tasks.runs_reap", "schedule": 10.0},
    # queued runs whose task message the broker lost are sent again (trainer_app/services/reconcile.py)
    "runs-reconcile": {"task": "trainer_app.tasks.runs_reconcile",
                       "schedule": float(env.get_int("TRAINYARD_RECONCILE_EVERY_S", 15, minimum=1)),
                       "options": {"expires": 60}},
    # a waiting run of higher priority makes room on preemptible queues (trainer_app/services/steering.py)
    "runs-preempt": {"task": "trainer_app.tasks.runs_preempt", "schedule": 5.0, "options": {"expires": 30}},
    # the knowledge graph catches up with SQL every second (lag p95 0.97 s at 10 runs/s, docs/knowledge-graph.md)
    "kg-sync": {"task": "kg_app.tasks.kg_sync", "schedule": 1.0, "options": {"queue": "default", "expires": 30}},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "run" / "celerybeat-schedule")
WORKER_HEARTBEAT_SECONDS = 5
RUN_HEARTBEAT_SECONDS = 5
RUN_LEASE_SECONDS = 30  # a run whose supervisor has not renewed its lease for this long is lost
SSE_HEARTBEAT_SECONDS = 15  # a quiet event stream says the run's status this often, and ends once it is final
RUN_STREAM_TTL_SECONDS = 24 * 3600  # a finished run's stream is dropped a day after SQL has it all
RUN_CANCEL_GRACE_SECONDS = 60  # after SIGTERM, the engine finishes its step and checkpoints; then SIGKILL
# An engine whose ranks make no progress (no step, evaluation batch or bounded phase such as a checkpoint) for
# this long is hung: its supervisor kills it and re-queues the run to resume from its checkpoint (docs/operations.md)
RUN_HANG_TIMEOUT_SECONDS = env.get_int("TRAINYARD_RUN_HANG_TIMEOUT_S", 600, minimum=1)
# torch threads per training process (OMP_NUM_THREADS); 0 = this worker's CPU count over the run's processes
ENGINE_CPU_THREADS = env.get_int("TRAINYARD_ENGINE_CPU_THREADS", 0, minimum=0)
# a run queued in SQL this long, whose message the broker has not held for this long either, is sent again
RUN_RECONCILE_GRACE_SECONDS = env.get_int("TRAINYARD_RECONCILE_GRACE_S", 30, minimum=0)
RUN_HANG_STARTUP_SECONDS = 180  # torchrun's agent imports torch before any rank starts (and beats): at least this long
RUN_HANG_KILL_GRACE_SECONDS = 5  # a hung engine gets SIGTERM, then SIGKILL (a hung rank cannot act on SIGTERM)
WORKER_OFFLINE_AFTER_SECONDS = 20
FLEET_HISTORY_DAYS = 7  # per-minute GPU utilisation and memory of every worker (the worker page's chart)
# Multi-node runs (docs/operations.md): each node's worker waits this long for the rest of the gang, then gives
# its slot back and tries again later; the other nodes reach this worker at TRAINYARD_NODE_ADDRESS.
RUN_GANG_TIMEOUT_SECONDS = env.get_int("TRAINYARD_RUN_GANG_TIMEOUT_SECONDS", 120, minimum=1)
NODE_ADDRESS = env.get("TRAINYARD_NODE_ADDRESS", "")  # empty: this machine's fully qualified host name

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "trainyard",
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}

# --- Knowledge graph ----------------------------------------------------------------------
_graph = env.graph_url(env.get("KG_URL"))
KG_URL = _graph.url if _graph else (_embedded_url("kg_url") or "falkordb://127.0.0.1:6379")
KG_USER = env.get("KG_USER", "neo4j")
KG_PASSWORD = env.get("KG_PASSWORD", "")
KG_GRAPH_NAME = "trainyard"

# --- Files --------------------------------------------------------------------------------
MEDIA_ROOT = env.get("MEDIA_ROOT", str(VAR_DIR / "media"))
MEDIA_URL = "/media/"  # never served directly: files go through views that check access
# Resumable uploads send 8 MB chunks as raw request bodies; whole-file uploads stream to disk.
UPLOAD_CHUNK_BYTES = 8 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_CHUNK_BYTES + 1024 * 1024
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "frontend" / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "frontend.vendor.VendorFinder",
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
if not PRODUCTION:
    STATIC_ROOT.mkdir(exist_ok=True)
WHITENOISE_USE_FINDERS = True  # a checkout serves its static files before `collectstatic` has run

# --- Accounts -----------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Login rate limit, per user name and client address together: a wrong password from one
# address cannot lock a user out everywhere, nor can one address try many passwords.
AXES_FAILURE_LIMIT = env.get_int("TRAINYARD_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = env.get_int("TRAINYARD_LOGIN_COOLOFF_MINUTES", 15, minimum=1) / 60
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "frontend.views.auth.locked_out"
AXES_VERBOSE = False

# --- API ----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": None,
    "EXCEPTION_HANDLER": "trainer_app.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Trainyard API",
    "DESCRIPTION": "Every action of the Trainyard dashboard, as an API. Authenticate with a session or "
    "`Authorization: Token <token>` from POST /api/auth/token/.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Served from the drf-spectacular-sidecar wheel: no CDN, the docs work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # several models have a `status` with their own choices: each gets its own enum in the schema
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "trainer_app.models.runs.RunStatus",
        "SweepStatusEnum": "trainer_app.models.sweeps.SweepStatus",
        "WorkerStatusEnum": "trainer_app.models.fleet.WorkerStatus",
        "DatasetStatusEnum": "trainer_app.models.datasets.DatasetStatus",
    },
}

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Security -------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # the page's JavaScript reads it to send X-CSRFToken
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.get_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 60 * 60 * 24 * 365
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    # /api/health/ must answer load balancers over plain HTTP inside the cluster.
    SECURE_REDIRECT_EXEMPT = [r"^api/health/$"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "axes": {"level": "WARNING"},
    },
}
