"""Settings for the embedded default: SQLite and local files, no service to install.

Every setting that differs in production comes from an environment variable.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("MODERATION_VAR_DIR", BASE_DIR / "var"))

# The embedded default is for one machine and the demo; production sets its own key.
SECRET_KEY = os.environ.get("SECRET_KEY", "insecure-embedded-default-key-change-me")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = [h for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1").split(",") if h]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "rest_framework",
    "drf_spectacular",
    "moderation.media",
    "moderation.inference",
    "moderation.review",
    "moderation.dashboards",
    "moderation.training",
    "moderation.audit",
    "moderation.model_audit",
    "moderation.demo",
    "django_celery_beat",
    "axes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "moderation.media.middleware.DatabaseUnavailableMiddleware",
    # Last: turns a sign-in refused for too many failures into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "moderation.urls"
# A form refused for its CSRF token gets the site's 403 page, saying the form expired.
CSRF_FAILURE_VIEW = "moderation.errors.csrf_failure"
# Server errors with their tracebacks to the process's output with DEBUG off too (the demo's
# web server runs so; Django's own console logging stops with DEBUG): the 500 page says the
# error has been logged. Production settings replace this with their own.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"debug_off": {"()": "django.utils.log.RequireDebugFalse"}},
    "handlers": {
        "errors": {"class": "logging.StreamHandler", "filters": ["debug_off"], "level": "ERROR"}
    },
    "loggers": {"django.request": {"handlers": ["errors"], "level": "INFO"}},
}

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

WSGI_APPLICATION = "moderation.wsgi.application"

# DATABASE_URL (postgres://user@host:5432/name) in production; SQLite on one machine.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{os.environ.get('SQLITE_PATH', VAR_DIR / 'moderation.sqlite3')}",
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "0")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Workers and the web server write at once: wait for the lock instead of failing at once.
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    # Django's SQLite with a flush that lifts the append-only triggers (moderation/db).
    DATABASES["default"]["ENGINE"] = "moderation.db.sqlite3"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
MEDIA_URL = "media/"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "review:next"
LOGOUT_REDIRECT_URL = "login"

# Brute-force protection (django-axes) for the sign-in page and the admin's. Its backend comes
# first: it refuses a locked-out sign-in before the password is checked. It needs the request,
# so tests sign in with `client.force_login` or by posting the form, never `client.login()`.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# After AXES_FAILURE_LIMIT failed sign-ins as one user from one address, that user is refused
# from that address (other addresses and other users still sign in) for AXES_COOLOFF_MINUTES
# (0: until an admin unlocks it: Axes → Access attempts in the admin, delete the row, or
# `manage.py axes_reset_username USERNAME`). A successful sign-in clears the count.
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("AXES_COOLOFF_MINUTES", "15"))) or None
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Rendered with status 429 (AXES_HTTP_RESPONSE_CODE) instead of the sign-in page.
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"

# Where trained rating bundles live; `make bundle` writes the default one here.
BUNDLE_DIR = Path(os.environ.get("BUNDLE_DIR", VAR_DIR / "bundles"))
# "auto" picks CUDA when present; "cpu" or "cuda" force one.
RATING_DEVICE = os.environ.get("RATING_DEVICE", "auto")
# Items a worker rates in one batch: the sweep's batches, and a new item's task takes along the
# items received about the same time that wait for their prediction, up to this many.
INFERENCE_BATCH_SIZE = int(os.environ.get("INFERENCE_BATCH_SIZE", 64))
# The lease of a queued rating: the periodic sweep queues an item without a champion
# prediction again only when its last dispatch (at ingestion, by the sweep, by an admin's
# retry) is older than this, so the messages already waiting, or running, are not doubled
# after a restart. A message the broker lost is queued again within this plus SWEEP_SECONDS.
# Make it longer than the inference queue takes to drain; failed items are never swept.
RATING_LEASE_SECONDS = float(os.environ.get("RATING_LEASE_SECONDS", "600"))
# Seconds a worker spends explaining a batch's ratings (occluding words and tags for the neural
# experts) per second it spent rating it: 1 keeps it at half its speed or better; 0 keeps only
# the cheap explanations (tag rules, n-gram). Items over the budget are marked partial.
EXPLANATION_BUDGET = float(os.environ.get("EXPLANATION_BUDGET", "1"))

# Ingestion limits: beyond them the API answers 413 or 400 and writes nothing.
MAX_UPLOAD_BYTES = int(os.environ.get("MAX_UPLOAD_BYTES", 20 * 1024 * 1024))
MAX_IMAGE_PIXELS = int(os.environ.get("MAX_IMAGE_PIXELS", 40_000_000))
MAX_PROMPT_CHARS = int(os.environ.get("MAX_PROMPT_CHARS", 10_000))
MAX_TAGS = int(os.environ.get("MAX_TAGS", 200))
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_UPLOAD_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = MAX_UPLOAD_BYTES + 1024 * 1024
# Share of new items that go to the test split, by a hash of their id.
TEST_FRACTION = float(os.environ.get("TEST_FRACTION", "0.2"))
# Seconds a web process trusts an API token it has looked up, instead of a query per request;
# a client deactivated in the admin is refused within this time (0: look up every request).
API_TOKEN_CACHE_SECONDS = float(os.environ.get("API_TOKEN_CACHE_SECONDS", "10"))

# Review queue
CLAIM_MINUTES = int(os.environ.get("CLAIM_MINUTES", "10"))
# How many items a grid review page claims at once (each with its own CLAIM_MINUTES lease).
GRID_PAGE_SIZE = int(os.environ.get("GRID_PAGE_SIZE", "40"))
SKIP_HOURS = float(os.environ.get("SKIP_HOURS", "4"))

# Label quality (README, "Labels a team can trust").
# A moderator's decision this many levels or more below the champion's suggestion waits for a
# second moderator's blind confirmation.
BIG_DOWNGRADE_LEVELS = int(os.environ.get("BIG_DOWNGRADE_LEVELS", "2"))
# Share of the items served to a moderator that are gold items, and how much more often an
# explicit (X, XXX) gold item is drawn than a milder one.
GOLD_SHARE = float(os.environ.get("GOLD_SHARE", "0.10"))
GOLD_EXPLICIT_WEIGHT = float(os.environ.get("GOLD_EXPLICIT_WEIGHT", "3"))
# A gold miss below the settled rating weighs GOLD_UNDER_WEIGHT, one above GOLD_OVER_WEIGHT. A
# moderator with GOLD_MIN_ANSWERS answers or more whose weighted miss rate (weighted misses
# over answers times the under-rating weight) passes GOLD_HOLD_RATE is held.
GOLD_UNDER_WEIGHT = float(os.environ.get("GOLD_UNDER_WEIGHT", "3"))
GOLD_OVER_WEIGHT = float(os.environ.get("GOLD_OVER_WEIGHT", "1"))
GOLD_MIN_ANSWERS = int(os.environ.get("GOLD_MIN_ANSWERS", "20"))
GOLD_HOLD_RATE = float(os.environ.get("GOLD_HOLD_RATE", "0.2"))
# Share of new items decided by two moderators independently (by a hash of the item's id),
# and whether those two see the model's suggestion.
DOUBLE_REVIEW_SHARE = float(os.environ.get("DOUBLE_REVIEW_SHARE", "0.05"))
DOUBLE_REVIEW_SHOWS_SUGGESTION = os.environ.get("DOUBLE_REVIEW_SHOWS_SUGGESTION", "1") == "1"
# The label-error pass (confident learning): how often beat runs it, and the most second looks
# it opens in one run.
LABEL_ERRORS_SECONDS = float(os.environ.get("LABEL_ERRORS_SECONDS", str(24 * 3600)))
LABEL_ERRORS_LIMIT = int(os.environ.get("LABEL_ERRORS_LIMIT", "200"))
# Model audit: a near-miss is an item the champion rated below R whose MLP gave its best
# rating of R or above a probability within this margin of its top one (model_audit.sampling).
MODEL_AUDIT_MARGIN = float(os.environ.get("MODEL_AUDIT_MARGIN", "0.15"))

# Dashboards: the live figures (every version scored on moderators' current labels) take about
# a second to count over 100,000 labels, so the overview reuses them for this many seconds and
# says when they were counted (0: count them on every view).
DASHBOARD_LIVE_SECONDS = int(os.environ.get("DASHBOARD_LIVE_SECONDS", "60"))

# Celery: an embedded broker that needs no server unless CELERY_BROKER_URL names one
# (redis://127.0.0.1:6379/0, amqp://guest@127.0.0.1//).
CELERY_BROKER_URL = os.environ.get(
    "CELERY_BROKER_URL", f"sqla+sqlite:///{VAR_DIR / 'celery-broker.sqlite3'}"
)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    # Exact names win over the patterns below: the periodic checks are light work for the
    # default (CPU) workers and must not wait behind a training run on a GPU worker.
    "moderation.inference.tasks.sweep_unpredicted": {"queue": "default"},
    "moderation.training.tasks.retrain_if_enough_labels": {"queue": "default"},
    "moderation.training.tasks.record_live_figures": {"queue": "default"},
    "moderation.review.tasks.find_label_errors": {"queue": "default"},
    # A promotion loads the bundle and rates the review queue: inference work, and it must not
    # wait for a retrain to finish on the training queue.
    "moderation.training.tasks.run_promotion": {"queue": "inference"},
    "moderation.inference.tasks.*": {"queue": "inference"},
    "moderation.training.tasks.*": {"queue": "training"},
}
CELERY_TASK_ALWAYS_EAGER = os.environ.get("CELERY_TASK_ALWAYS_EAGER", "0") == "1"
# What a worker killed mid-task leaves: tasks are acknowledged when they finish, so the broker
# still holds the message. RabbitMQ gives it back when the worker's connection drops; Redis
# after CELERY_VISIBILITY_TIMEOUT seconds, which must be longer than the longest task (a
# training run), or a slow task is delivered twice; the embedded SQLAlchemy transport never
# does, and the sweep below queues those items again. Only Redis and SQS know the option (the
# SQLAlchemy transport hands its options to its engine). RELIABILITY.md has the tests.
if CELERY_BROKER_URL.startswith(("redis", "rediss", "sqs")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600"))
    }
# Beat keeps its schedule in the database, editable in the admin (Periodic tasks): the sweep,
# which queues every item without a champion prediction (what a broker lost or never got), the
# retrain check and the daily live figures. moderation/schedules.py creates them after
# `migrate` with these intervals when they do not exist yet; an admin's later edit is never
# overwritten.
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
SWEEP_SECONDS = float(os.environ.get("SWEEP_SECONDS", "300"))
RETRAIN_CHECK_SECONDS = float(os.environ.get("RETRAIN_CHECK_SECONDS", "3600"))
# How often the champion's figures on live labels are kept as a point of the live trend.
LIVE_FIGURES_SECONDS = float(os.environ.get("LIVE_FIGURES_SECONDS", "86400"))

# Retraining and promotion
RETRAIN_MIN_NEW_LABELS = int(os.environ.get("RETRAIN_MIN_NEW_LABELS", "200"))
# A retrain's MLP reads the image expert only once at least this many of the labelled items it
# trains on have an image (rating_models' `BundleConfig.min_image_labels`); until then its
# image weights would be untrained noise, and the image expert speaks through the voter alone.
MIN_IMAGE_LABELS = int(os.environ.get("MIN_IMAGE_LABELS", "50"))
# A running retrain beats from a thread every TRAINING_HEARTBEAT_SECONDS, however long its
# stage; a run whose heartbeat is older than TRAINING_STALE_MINUTES was killed with its worker:
# it is failed (the champion unchanged) and no longer blocks the next run.
TRAINING_HEARTBEAT_SECONDS = float(os.environ.get("TRAINING_HEARTBEAT_SECONDS", "30"))
TRAINING_STALE_MINUTES = float(os.environ.get("TRAINING_STALE_MINUTES", "30"))
# The gate: severe DCM count not above the champion's; DCM rate not above the champion's plus
# GATE_DCM_TOLERANCE; macro-F1 not below the champion's minus GATE_F1_TOLERANCE.
GATE_DCM_TOLERANCE = float(os.environ.get("GATE_DCM_TOLERANCE", "0"))
GATE_SEVERE_TOLERANCE = int(os.environ.get("GATE_SEVERE_TOLERANCE", "0"))
GATE_F1_TOLERANCE = float(os.environ.get("GATE_F1_TOLERANCE", "0.01"))
# With fewer explicit (X, XXX) test items than this, a candidate is never promoted
# automatically: an admin decides.
GATE_MIN_EXPLICIT = int(os.environ.get("GATE_MIN_EXPLICIT", "10"))
AUTO_PROMOTE = os.environ.get("AUTO_PROMOTE", "1") == "1"
# A promotion or rollback rates up to PROMOTION_RATE_ITEMS open review items (riskiest first)
# with the incoming version before the switch; the rest show the former champion's suggestion,
# marked so, until the workers have rated them.
PROMOTION_RATE_ITEMS = int(os.environ.get("PROMOTION_RATE_ITEMS", "5000"))
# Each web process checks this often for a promotion under way and loads the incoming bundle
# in the background, so no request waits for it (0: never; it loads on first use).
BUNDLE_WATCH_SECONDS = float(os.environ.get("BUNDLE_WATCH_SECONDS", "5"))
GATE_BOOTSTRAP = int(os.environ.get("GATE_BOOTSTRAP", "300"))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["moderation.media.api_auth.ClientTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "moderation.media.api_errors.exception_handler",
    # Per client (a client is the request's user): over the rate, 429 with Retry-After. The
    # count lives in the cache: set CACHE_URL in production so that every process shares it.
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.UserRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"user": os.environ.get("API_THROTTLE_RATE", "1200/min")},
}
if os.environ.get("CACHE_URL"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["CACHE_URL"],
        }
    }
SPECTACULAR_SETTINGS = {
    "TITLE": "Content rating moderation API",
    "DESCRIPTION": (
        "Ingest media items, rate prompts at generation time, read predictions and labels."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Like every other API path, the schema is for clients with a token.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
}
