"""Django settings. Secrets and connections come from the environment / .env, behaviour from
config.yaml. See .env.example for every variable.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

from config.behaviour import load_behaviour
from config.env import (
    any_env_set,
    env_bool,
    env_int,
    env_list,
    env_path_prefix,
    env_snowflake,
    env_str,
    env_url,
)
from config.secrets import local_secrets

BASE_DIR = Path(__file__).resolve().parent.parent
ENV_FILE = Path(os.environ.get("ZSPB_ENV_FILE", BASE_DIR / ".env"))
ENV_FILE_LOADED = load_dotenv(ENV_FILE, override=False) if ENV_FILE.is_file() else False
VAR_DIR = Path(env_str("ZSPB_VAR_DIR", str(BASE_DIR / "var")) or BASE_DIR / "var")

# Variables only a real installation sets. Setting any of them in the environment (a systemd
# EnvironmentFile, no .env) means the site is configured, so DEBUG stays off unless asked for.
# DATABASE_URL and REDIS_URL are left out on purpose: `make test`, CI and a local trial on
# PostgreSQL set only those and still want generated secrets.
CONFIGURED_BY = ("SECRET_KEY", "SECRET_KEY_FALLBACKS", "DIGEST_SECRET", "FIELD_ENCRYPTION_KEY",
                 "BOT_API_TOKEN", "LICENSE_SIGNING_KEY", "ALLOWED_HOSTS",
                 "CSRF_TRUSTED_ORIGINS", "SITE_URL")
# Embedded default: no .env file (or an empty one) and none of the variables above set. The
# site then runs for a trial or development, on generated secrets, with DEBUG on.
EMBEDDED_DEFAULT = not ENV_FILE_LOADED and not any_env_set(CONFIGURED_BY)
DEBUG = env_bool("DEBUG", default=EMBEDDED_DEFAULT)
_local = local_secrets(VAR_DIR) if DEBUG else {}


def _secret(name: str) -> str:
    value = env_str(name, None)
    if value:
        return value
    if name in _local:
        return _local[name]
    raise ImproperlyConfigured(f"{name} must be set when DEBUG is off (see .env.example)")


SECRET_KEY = _secret("SECRET_KEY")
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS")
# Keyed digests of codes, keys and IPs. Changing it makes every stored digest unmatchable.
DIGEST_SECRET = _secret("DIGEST_SECRET")
# Comma-separated Fernet keys; the first encrypts, all decrypt (rotation).
FIELD_ENCRYPTION_KEY = env_list("FIELD_ENCRYPTION_KEY") or [_secret("FIELD_ENCRYPTION_KEY")]
for _key in FIELD_ENCRYPTION_KEY:
    try:
        Fernet(_key)
    except ValueError:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEY must be comma-separated Fernet keys (32 url-safe base64 bytes); "
            "make one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'"
        ) from None
BOT_API_TOKEN = _secret("BOT_API_TOKEN")
if len(BOT_API_TOKEN) < 32:
    raise ImproperlyConfigured("BOT_API_TOKEN must be at least 32 characters")
# Ed25519 seed (64 hex characters) that signs licence answers for the loader.
LICENSE_SIGNING_KEY = _secret("LICENSE_SIGNING_KEY")
try:
    if len(bytes.fromhex(LICENSE_SIGNING_KEY)) != 32:
        raise ValueError
except ValueError:
    raise ImproperlyConfigured(
        "LICENSE_SIGNING_KEY must be 64 hex characters (python -c 'import secrets; "
        "print(secrets.token_hex(32))')"
    ) from None

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# Public address used in links the site prints or sends (invite links, download links).
SITE_URL = (
    env_str("SITE_URL", f"http://127.0.0.1:{env_int('PORT', 8000, minimum=1)}") or ""
).rstrip("/")
LOGIN_URL = "/login"
# Number of reverse proxies (nginx) in front of gunicorn, for client IP resolution.
NUM_PROXIES = env_int("NUM_PROXIES", 0 if DEBUG else 1, minimum=0)
NINJA_NUM_PROXIES = NUM_PROXIES
NINJA_PAGINATION_MAX_LIMIT = 100
NINJA_PAGINATION_PER_PAGE = 25
# Signed loader download links stay valid this long.
LOADER_LINK_TTL_SECONDS = env_int("LOADER_LINK_TTL_SECONDS", 300, minimum=10)
LOADER_MAX_UPLOAD_MB = env_int("LOADER_MAX_UPLOAD_MB", 200, minimum=1)  # admin upload limit
# Set (e.g. /protected-loader) when nginx serves the loader file: the app checks the signed link
# and answers with X-Accel-Redirect to PREFIX/<path under MEDIA_ROOT>, which nginx maps to an
# `internal` location. Empty: the file streams through Django.
LOADER_ACCEL_REDIRECT_PREFIX = env_path_prefix("LOADER_ACCEL_REDIRECT_PREFIX")

INSTALLED_APPS = [
    # unfold's basic config: its default config would install a plain UnfoldAdminSite as
    # admin.site; StaffAdminConfig installs the two-factor staff site instead.
    "unfold.apps.BasicAppConfig",
    "unfold.contrib.filters",
    "staff.apps.StaffAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_q",
    # Only for its templates and static files: /api/docs serves Swagger UI from the site.
    "ninja",
    "channels",
    "csp",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "core",
    "staff.apps.StaffConfig",
    "api",
]

MIDDLEWARE = [
    # First: every log line of a request, Django's own included, carries its id.
    "core.middleware.RequestIdMiddleware",
    # An API address too long answers 414 in the API's error shape.
    "api.errors.UrlLengthLimit",
    # A view that loses the database (restart, failover) answers 503 + Retry-After, not 500.
    "core.middleware.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Marks request.user verified once the staff member passed TOTP (staff.site requires it).
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes requires.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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
                "django.template.context_processors.i18n",
                "api.pages.base.server_now",
            ],
        },
    },
]

DATABASE_URL = env_url("DATABASE_URL", schemes=("postgres", "postgresql", "sqlite"))
# Connections per process to PostgreSQL, at most (see .env.example).
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 8, minimum=1)
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60,
                                                  conn_health_checks=True)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # A pool per process instead of persistent connections: under ASGI every request's
        # sync code runs in a new thread, so a connection kept per thread (CONN_MAX_AGE) was
        # never reused and stayed open until garbage-collected, one more backend per request
        # (Django refuses the two together). A connection goes back to the pool when its
        # request ends. At checkout the pool checks it (CONN_HEALTH_CHECKS, which core's
        # backend turns into core.dbpool.check_connection): a connection killed while idle
        # (PostgreSQL restart, failover, pg_terminate_backend) is replaced instead of reaching
        # a request. core.dbpool also covers forks.
        DATABASES["default"]["ENGINE"] = "core.pgbackend"
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": DB_POOL_MAX_SIZE,
            # A request waits this long for a free connection, then answers 503: PoolTimeout
            # is an OperationalError (core.middleware.DatabaseUnavailableMiddleware).
            "timeout": 10,
        }
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                             "NAME": str(VAR_DIR / "db.sqlite3")}}

REDIS_URL = env_url("REDIS_URL", schemes=("redis", "rediss", "unix"))
if REDIS_URL:
    # core.cache answers from a per-process local cache while Redis is unreachable (throttles
    # keep their rates per process, nothing fails the request); the short timeouts bound what a
    # dead or hung Redis costs the one call per second that probes it.
    CACHES = {"default": {"BACKEND": "core.cache.ResilientRedisCache",
                          "LOCATION": REDIS_URL, "KEY_PREFIX": "zspb",
                          "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}}}
elif not DEBUG:
    # A per-process cache would give every gunicorn worker its own throttles, Discord rate
    # limiter and locks, and the channel layer would not cross processes.
    raise ImproperlyConfigured(
        "REDIS_URL must be set when DEBUG is off: the local-memory cache is per process, so "
        "throttles, locks and real-time events would not be shared (see .env.example)")
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Real-time push to member pages (Django Channels): one group per member. Redis carries the
# events between processes; the embedded default keeps them inside the one process.
if REDIS_URL:
    CHANNEL_LAYERS = {"default": {
        # channels_redis' core layer, batched at both ends (core/channel_layer.py).
        "BACKEND": "core.channel_layer.BatchingRedisChannelLayer",
        # redis-py 8 times a read out after 5 s by default, exactly channels_redis' 5 s
        # blocking pop: every idle socket's receive loop died after 5 s. The read timeout must
        # stay above the pop's.
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15,
                              "socket_connect_timeout": 2}],
                   "prefix": "zspb:ws", "capacity": 500, "expiry": 30,
                   # A web worker's sockets all share its one process channel ("specific.<id>!"
                   # in Redis), so that channel must hold a batch for every socket at once: the
                   # minute's expiries arrive a thousand at a time (core.channel_layer), and at
                   # 500 a worker with more sockets lost the rest. 5,000 small messages are
                   # about 1 MB of Redis for a dead worker's channel, gone after `expiry`.
                   "channel_capacity": {"specific.*": 5000}},
    }}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_USER_MODEL = "core.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Login lock-out: per username *and* IP, so an attacker elsewhere cannot lock a member out.
# The client IP comes from the one proxy-aware resolver (NUM_PROXIES), never a raw header.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "api.net.client_ip"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
AXES_USERNAME_FORM_FIELD = "username"
AXES_LOCKOUT_CALLABLE = "api.lockout.lockout_response"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
     "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# HTTPS: on by default without DEBUG. A server without a domain (plain HTTP) sets HTTPS=0, and
# `check --deploy` then warns about every one of these, as it should.
HTTPS = env_bool("HTTPS", default=not DEBUG)
# Django's database sessions, read with one precompiled statement (core/sessions.py).
SESSION_ENGINE = "core.sessions"
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=HTTPS)
# Load balancers and probes may ask over plain HTTP, straight to the app.
SECURE_REDIRECT_EXEMPT = [r"^api/health(/|$)"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS: list[str] = []
if not SECURE_HSTS_PRELOAD:
    # Preloading is a submission to the browsers' list that is hard to undo; the site owner
    # opts in with SECURE_HSTS_PRELOAD=1, so its absence is a decision, not an oversight.
    SILENCED_SYSTEM_CHECKS.append("security.W021")
if NUM_PROXIES:
    # nginx overwrites X-Forwarded-Proto with its $scheme; without a proxy nothing does, and a
    # client could claim HTTPS.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LANGUAGE_CODE = "en"
LOCALE_PATHS = [BASE_DIR / "locale"]
LANGUAGES = [("en", "English"), ("ru", "Русский")]
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# The language a member picks is remembered for a year in Django's language cookie.
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
LANGUAGE_COOKIE_SAMESITE = "Lax"

# Member pages run no inline script and load nothing from elsewhere. The staff admin (unfold
# uses inline scripts and Alpine.js) and the API docs are left to their own defaults.
CONTENT_SECURITY_POLICY = {
    "EXCLUDE_URL_PREFIXES": ["/admin/", "/api/docs"],
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    },
}

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")) or VAR_DIR / "media")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Under uvicorn (make run) nothing else serves static files: in DEBUG whitenoise finds them
# in the apps, in production it serves the collected STATIC_ROOT.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

ZSPB = load_behaviour(Path(env_str("ZSPB_CONFIG", str(BASE_DIR / "config.yaml"))
                           or BASE_DIR / "config.yaml"))
# `make bench` only: mounts /api/bench/baseline (api/bench.py), the bare endpoint every
# benchmark figure is compared with. Never set on a site: absent, the route and its schema are.
BENCH_BASELINE = env_bool("ZSPB_BENCH_BASELINE", False)

DISCORD_BOT_TOKEN = env_str("DISCORD_BOT_TOKEN", None)
DISCORD_GUILD_ID = env_snowflake("DISCORD_GUILD_ID")
DISCORD_API_BASE = env_url("DISCORD_API_BASE", schemes=("http", "https"),
                           default="https://discord.com/api/v10")
DISCORD_ENABLED = bool(DISCORD_BOT_TOKEN and DISCORD_GUILD_ID)
WEBHOOK_URLS = {
    journal: env_url(f"WEBHOOK_{journal.upper()}_URL", schemes=("http", "https"))
    for journal in ("user", "moderation", "error")
}

# django-q2: the ORM broker because it keeps a task until it is acknowledged (at-least-once);
# Redis' broker loses the task of a killed worker. retry must exceed timeout.
Q_CLUSTER = {
    "name": "zspb",
    "orm": "default",
    "workers": env_int("Q_WORKERS", 2, minimum=1),
    "timeout": 60,
    "retry": 90,
    "max_attempts": 5,
    "catch_up": False,
    "ack_failures": True,
    "save_limit": 1000,
    "poll": 1,
    "label": "Task queue",
}
QUEUE_WARN_THRESHOLD = env_int("QUEUE_WARN_THRESHOLD", 500, minimum=1)

LOG_DIR = env_str("LOG_DIR", None)
LOG_LEVEL = (env_str("LOG_LEVEL", "INFO") or "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, "
                               f"got {LOG_LEVEL!r}")
_journal_handlers: dict[str, dict[str, object]] = {}
if LOG_DIR:
    Path(LOG_DIR).mkdir(parents=True, exist_ok=True)
    for _journal in ("user", "moderation", "error"):
        _journal_handlers[f"journal_{_journal}"] = {
            "class": "logging.handlers.WatchedFileHandler",
            "filename": str(Path(LOG_DIR) / f"{_journal}.log"),
            "formatter": "plain",
            "filters": ["request_id"],
        }
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # request_id: the id of the request (X-Request-ID) or task being served, "-" elsewhere.
    "filters": {"request_id": {"()": "core.requestid.RequestIdFilter"}},
    "formatters": {"plain": {
        "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain",
                             "filters": ["request_id"]},
                 **_journal_handlers},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "axes": {"level": "WARNING"},
        # At INFO httpx logs every URL, and webhook URLs carry their token.
        "httpx": {"level": "WARNING"},
        **{
        f"zspb.journal.{journal}": {
            "handlers": [f"journal_{journal}"] if LOG_DIR else [],
            "level": "INFO",
            "propagate": not LOG_DIR,
        }
        for journal in ("user", "moderation", "error")
        },
    },
}

# Staff admin (django-unfold on staff.site.StaffAdminSite). Staff must pass TOTP: the
# authenticator apps show this issuer next to the account.
OTP_TOTP_ISSUER = "ZalypaSPB"
UNFOLD = {
    "SITE_TITLE": "ZalypaSPB staff",
    "SITE_HEADER": "ZalypaSPB",
    "SHOW_LANGUAGES": True,
    "DASHBOARD_CALLBACK": "staff.dashboard.dashboard_callback",
    "SIDEBAR": {
        "show_search": False,
        "show_all_applications": False,
        # Grouped by task, built from the registry per request (staff.navigation).
        "navigation": "staff.navigation.sidebar_navigation",
    },
}
