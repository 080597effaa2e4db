"""Settings for the project, read from the environment (and `.env` when present).

With no environment at all this is a working development setup: debug on, a generated
secret key kept under `var/`, SQLite under `var/`, an embedded Redis on a unix socket
under `var/` and the local Telnyx sandbox. Production (`DJANGO_DEBUG=false`) refuses to
start without a secret key and allowed hosts.
"""

from __future__ import annotations

import importlib.util
import secrets
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from telephony.redis_target import caches_config, channel_layers_config, target_from_env

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    # Real environment variables win over the file.
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# ------------------------------------------------------------------------------
# Core
# ------------------------------------------------------------------------------
VAR_DIR = Path(env.str("TELEPHONY_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DJANGO_DEBUG", default=True)


def _secret_key() -> str:
    key = env.str("DJANGO_SECRET_KEY", default="")
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG=false "
            '(generate one with: python -c "import secrets; print(secrets.token_urlsafe(50))")'
        )
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()

if DEBUG:
    ALLOWED_HOSTS = env.list(
        "DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"]
    )
else:
    ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[])
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured(
            "DJANGO_ALLOWED_HOSTS must be set when DJANGO_DEBUG=false "
            "(a comma-separated list, e.g. app.example.com)"
        )

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "telephony",
    "dashboard",
]
# Local development only (`serve`, `telnyx_sandbox`): a production install may leave it out.
if importlib.util.find_spec("devserver"):
    INSTALLED_APPS.append("devserver")
# Optional: django-health-check (`pip install django-health-check`) adds /ht/.
if importlib.util.find_spec("health_check"):
    INSTALLED_APPS.append("health_check")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "telephony.web.api.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "telephony.web.api.ApiErrorMiddleware",
]
CSRF_FAILURE_VIEW = "telephony.web.api.csrf_failure"

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Agents log in through the site's own page (Django's LoginView); the admin keeps its own
# login, for staff only.
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"

if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# ------------------------------------------------------------------------------
# Database: the record of every credential and call
# ------------------------------------------------------------------------------
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, supervisor, workers) write to one file: WAL and
    # immediate transactions avoid "database is locked" under concurrent writers.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so worker subprocesses started by tests see the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_db.sqlite3")}
else:
    # Django under ASGI runs each request's sync code on a thread of its own, so without
    # a pool every request that reads the database (any logged-in API call: the session
    # and the user) opened a PostgreSQL connection of its own, about 5 ms. Django's psycopg
    # pool keeps them; with health checks on, it hands out only connections that answer.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps connections, not Django
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=10),
        "timeout": 10,  # seconds to wait for a free connection before an error
    }

# ------------------------------------------------------------------------------
# Redis and the channel layer
# ------------------------------------------------------------------------------
# Unset REDIS_URL means: the embedded Redis that `serve` runs on a unix socket under
# var/. Every process derives the same URL from the same default.
# High availability instead: REDIS_SENTINELS (host:port,...) and REDIS_SENTINEL_MASTER;
# every client asks the Sentinels for the current master (docs/OPERATIONS.md).
# Setting both forms is a start-up error. Neither password is ever logged.
EMBEDDED_REDIS_SOCKET = VAR_DIR / "redis.sock"
REDIS_SENTINELS = env.list("REDIS_SENTINELS", default=[])
REDIS_SENTINEL_MASTER = env.str("REDIS_SENTINEL_MASTER", default="")
REDIS_SENTINEL_PASSWORD = env.str("REDIS_SENTINEL_PASSWORD", default="")
# The password of Redis itself (master and replicas). With REDIS_URL it may be in the URL
# instead (redis://:password@host:6379/0), and the URL's wins.
REDIS_PASSWORD = env.str("REDIS_PASSWORD", default="")
_redis = target_from_env(
    url=env.str("REDIS_URL", default=""),
    sentinels=REDIS_SENTINELS,
    master=REDIS_SENTINEL_MASTER,
    password=REDIS_PASSWORD,
    sentinel_password=REDIS_SENTINEL_PASSWORD,
    default_url=f"unix://{EMBEDDED_REDIS_SOCKET}",
)
REDIS_URL = _redis.url  # empty with Sentinel
TELEPHONY_REDIS_PREFIX = env.str("TELEPHONY_REDIS_PREFIX", default="telephony")
CHANNEL_LAYERS = channel_layers_config(
    _redis,
    prefix=TELEPHONY_REDIS_PREFIX,
    capacity=env.int("TELEPHONY_QUEUE_CAPACITY", default=1000),
)
# Django's cache (rate limits) lives in the same Redis.
CACHES = caches_config(_redis, prefix=TELEPHONY_REDIS_PREFIX)
# At-most-once across a failover: after claiming a request, a worker waits up to
# TELEPHONY_CLAIM_WAIT_MS for this many replicas to hold the claim, and refuses to run
# the request otherwise (docs/ARCHITECTURE.md). Default: 1 with Sentinel, 0 (no wait) else.
TELEPHONY_CLAIM_REPLICAS = env.int(
    "TELEPHONY_CLAIM_REPLICAS", default=1 if _redis.is_sentinel else 0
)
TELEPHONY_CLAIM_WAIT_MS = env.int("TELEPHONY_CLAIM_WAIT_MS", default=500)

# ------------------------------------------------------------------------------
# Telnyx (unset TELNYX_API_KEY: `serve` runs the local sandbox and wires these up)
# ------------------------------------------------------------------------------
TELNYX_API_KEY = env.str("TELNYX_API_KEY", default="")
TELNYX_BASE_URL = env.str("TELNYX_BASE_URL", default="https://api.telnyx.com/v2")
TELNYX_CONNECTION_ID = env.str("TELNYX_CONNECTION_ID", default="")
TELNYX_CALL_CONNECTION_ID = env.str("TELNYX_CALL_CONNECTION_ID", default="")
TELNYX_FROM_NUMBER = env.str("TELNYX_FROM_NUMBER", default="")
TELNYX_PUBLIC_KEY = env.str("TELNYX_PUBLIC_KEY", default="")
TELNYX_WEBHOOK_URL = env.str("TELNYX_WEBHOOK_URL", default="")

# ------------------------------------------------------------------------------
# Telephony service knobs (see README, "Configuration")
# ------------------------------------------------------------------------------
# This host's name in supervisor and worker ids; distinct per host sharing one Redis
# (empty: the machine's host name).
TELEPHONY_HOST_ID = env.str("TELEPHONY_HOST_ID", default="")
TELEPHONY_WORKERS = env.int("TELEPHONY_WORKERS", default=2)
TELEPHONY_WORKER_CONCURRENCY = env.int("TELEPHONY_WORKER_CONCURRENCY", default=50)
TELEPHONY_SPARE_WORKERS = env.int("TELEPHONY_SPARE_WORKERS", default=1)
# Fork workers from a preloaded template process (milliseconds) instead of cold starts.
TELEPHONY_WORKER_PRELOAD = env.bool("TELEPHONY_WORKER_PRELOAD", default=True)
TELEPHONY_HEARTBEAT_INTERVAL = env.float("TELEPHONY_HEARTBEAT_INTERVAL", default=1.0)
TELEPHONY_HEARTBEAT_TIMEOUT = env.float("TELEPHONY_HEARTBEAT_TIMEOUT", default=3.0)
TELEPHONY_MAX_RESTARTS = env.int("TELEPHONY_MAX_RESTARTS", default=3)
TELEPHONY_RESTART_WINDOW = env.float("TELEPHONY_RESTART_WINDOW", default=60.0)
TELEPHONY_WORKER_MAX_REQUESTS = env.int("TELEPHONY_WORKER_MAX_REQUESTS", default=10000)
TELEPHONY_WORKER_MAX_RSS_MB = env.int("TELEPHONY_WORKER_MAX_RSS_MB", default=512)
TELEPHONY_SHUTDOWN_GRACE = env.float("TELEPHONY_SHUTDOWN_GRACE", default=10.0)
TELEPHONY_REQUEST_TIMEOUT = env.float("TELEPHONY_REQUEST_TIMEOUT", default=10.0)
# Seconds the agent's browser has to answer its leg before the call ends unplaced.
TELEPHONY_AGENT_ANSWER_TIMEOUT = env.float("TELEPHONY_AGENT_ANSWER_TIMEOUT", default=15.0)
TELEPHONY_ALLOWED_COUNTRIES = env.list("TELEPHONY_ALLOWED_COUNTRIES", default=["US", "CA"])
TELEPHONY_CREDENTIAL_TAG = env.str("TELEPHONY_CREDENTIAL_TAG", default="django-telephony")
TELEPHONY_CREDENTIAL_TTL = env.float("TELEPHONY_CREDENTIAL_TTL", default=24 * 3600.0)
TELEPHONY_STATE_CACHE_TTL = env.float("TELEPHONY_STATE_CACHE_TTL", default=0.25)
# The WebRTC signalling URL the page's softphone uses (the SDK's `host` option). Empty:
# the SDK's default, wss://rtc.telnyx.com. `serve` sets it to the sandbox's ws://.../rtc.
TELEPHONY_RTC_HOST = env.str("TELEPHONY_RTC_HOST", default="")
TELEPHONY_RATE_LIMIT_CREDENTIAL = env.str("TELEPHONY_RATE_LIMIT_CREDENTIAL", default="10/m")
TELEPHONY_RATE_LIMIT_CALL = env.str("TELEPHONY_RATE_LIMIT_CALL", default="6/m")
TELEPHONY_RECONCILE_INTERVAL = env.float("TELEPHONY_RECONCILE_INTERVAL", default=30.0)
TELEPHONY_CREDENTIAL_HYGIENE_INTERVAL = env.float(
    "TELEPHONY_CREDENTIAL_HYGIENE_INTERVAL", default=3600.0
)
TELEPHONY_CREDENTIAL_ORPHAN_GRACE = env.float("TELEPHONY_CREDENTIAL_ORPHAN_GRACE", default=300.0)
TELEPHONY_CLEANUP_MAX_PAGES = env.int("TELEPHONY_CLEANUP_MAX_PAGES", default=40)
TELEPHONY_WEBHOOK_TOLERANCE = env.float("TELEPHONY_WEBHOOK_TOLERANCE", default=300.0)
TELEPHONY_WEBHOOK_MAX_BYTES = env.int("TELEPHONY_WEBHOOK_MAX_BYTES", default=262144)
# Supervisor: backoff between restarts, start-up and kill grace for workers.
TELEPHONY_RESTART_BACKOFF_BASE = env.float("TELEPHONY_RESTART_BACKOFF_BASE", default=0.5)
TELEPHONY_RESTART_BACKOFF_MAX = env.float("TELEPHONY_RESTART_BACKOFF_MAX", default=10.0)
TELEPHONY_WORKER_START_TIMEOUT = env.float("TELEPHONY_WORKER_START_TIMEOUT", default=30.0)
TELEPHONY_KILL_GRACE = env.float("TELEPHONY_KILL_GRACE", default=2.0)
# Provider circuit breaker (per worker): judged over the last WINDOW calls, at least MIN_CALLS.
TELEPHONY_BREAKER_WINDOW = env.int("TELEPHONY_BREAKER_WINDOW", default=20)
TELEPHONY_BREAKER_MIN_CALLS = env.int("TELEPHONY_BREAKER_MIN_CALLS", default=10)
TELEPHONY_BREAKER_FAILURE_RATE = env.float("TELEPHONY_BREAKER_FAILURE_RATE", default=0.5)
TELEPHONY_BREAKER_SLOW_CALL_SECONDS = env.float("TELEPHONY_BREAKER_SLOW_CALL_SECONDS", default=3.0)
TELEPHONY_BREAKER_SLOW_RATE = env.float("TELEPHONY_BREAKER_SLOW_RATE", default=0.8)
TELEPHONY_BREAKER_OPEN_SECONDS = env.float("TELEPHONY_BREAKER_OPEN_SECONDS", default=10.0)
TELEPHONY_BREAKER_HALF_OPEN_PROBES = env.int("TELEPHONY_BREAKER_HALF_OPEN_PROBES", default=3)

# ------------------------------------------------------------------------------
# Operators: the admin's health page, /metrics (see docs/OBSERVABILITY.md)
# ------------------------------------------------------------------------------
# Telnyx credentials the account may hold at once (the sandbox's default is 5, like a free
# account): the telephony seats. Enforced (409 seat_limit) and shown on the health page.
# 0: unknown, Telnyx's own answer decides; the count is shown without a gauge.
TELEPHONY_ACCOUNT_CREDENTIAL_LIMIT = env.int("TELEPHONY_ACCOUNT_CREDENTIAL_LIMIT", default=5)
# A credential is an agent's seat while a page of theirs is open; this long after they
# leave (no WebSocket, no heartbeat) it is deleted at Telnyx and the seat is free again.
TELEPHONY_SEAT_IDLE_SECONDS = env.float("TELEPHONY_SEAT_IDLE_SECONDS", default=300.0)

# Recording: off, all (every answered call, from answer), or on_demand (the agent toggles it
# in the softphone). Dual-channel: the agent and the customer each on their own channel.
TELEPHONY_RECORDING = env.str("TELEPHONY_RECORDING", default="off")
if TELEPHONY_RECORDING not in ("off", "all", "on_demand"):
    raise ImproperlyConfigured(
        f"TELEPHONY_RECORDING must be off, all or on_demand, not {TELEPHONY_RECORDING!r}"
    )
TELEPHONY_RECORDING_FORMAT = env.str("TELEPHONY_RECORDING_FORMAT", default="mp3")
if TELEPHONY_RECORDING_FORMAT not in ("mp3", "wav"):
    raise ImproperlyConfigured(
        f"TELEPHONY_RECORDING_FORMAT must be mp3 or wav, not {TELEPHONY_RECORDING_FORMAT!r}"
    )
TELEPHONY_RECORDING_BEEP = env.bool("TELEPHONY_RECORDING_BEEP", default=False)
# Unset: keep recordings forever. Set: the workers' hygiene pass and `purge_recordings`
# delete older ones (our file, the row, and Telnyx's copy if any).
TELEPHONY_RECORDING_RETENTION_DAYS = env.int("TELEPHONY_RECORDING_RETENTION_DAYS", default=None)
# Delete Telnyx's copy once ours is stored and verified.
TELEPHONY_RECORDING_DELETE_REMOTE = env.bool("TELEPHONY_RECORDING_DELETE_REMOTE", default=False)
# Largest recording a worker downloads (bytes): a bigger one is refused, not stored.
TELEPHONY_RECORDING_MAX_BYTES = env.int("TELEPHONY_RECORDING_MAX_BYTES", default=2 * 1024**3)

# Files: static files as usual; recordings in their own storage, private (never served by
# URL, only through the authenticated listening view). Any django-storages backend works:
# set STORAGES["recordings"] in a settings module of your own.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "recordings": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {
            "location": env.str("TELEPHONY_RECORDINGS_DIR", default=str(VAR_DIR / "recordings")),
            "base_url": None,
            "file_permissions_mode": 0o600,
            "directory_permissions_mode": 0o700,
        },
    },
}

# /metrics answers these client addresses or networks, or a matching bearer token.
TELEPHONY_METRICS_ALLOWED_IPS = env.list(
    "TELEPHONY_METRICS_ALLOWED_IPS", default=["127.0.0.1", "::1"]
)
TELEPHONY_METRICS_TOKEN = env.str("TELEPHONY_METRICS_TOKEN", default="")

# ------------------------------------------------------------------------------
# Logging: one line per event, component and request/call id in the message
# ------------------------------------------------------------------------------
LOG_LEVEL = env.str("DJANGO_LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("TELEPHONY_LOG_FORMAT", default="line")
if LOG_FORMAT not in ("line", "json"):
    raise ImproperlyConfigured(f"TELEPHONY_LOG_FORMAT must be line or json, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "line": {"format": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"},
        "json": {"()": "config.log.JsonFormatter"},
    },
    "filters": {
        # 502/503/504 under /api/ are answers of the contract, logged by the API at INFO.
        "skip_expected_api_errors": {"()": "config.log.SkipExpectedApiErrors"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "telephony": {"level": LOG_LEVEL, "handlers": ["console"], "propagate": False},
        "dashboard": {"level": LOG_LEVEL, "handlers": ["console"], "propagate": False},
        "devserver": {"level": LOG_LEVEL, "handlers": ["console"], "propagate": False},
        # httpx logs every request's full URL at INFO, and a recording's download link is a
        # secret (signed, like a presigned S3 URL): never below WARNING, whatever root says.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "django.request": {
            "level": "ERROR",
            "handlers": ["console"],
            "filters": ["skip_expected_api_errors"],
            "propagate": False,
        },
    },
}
