"""The Celery app. Workers: `celery -A config worker`; exactly one beat: `celery -A config beat`."""

from __future__ import annotations

import os
import warnings

from celery import Celery
from celery.exceptions import SecurityWarning

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Containers and dev boxes often run as root; the worker accepts JSON only (no pickle), which is
# what the warning is about, so it is noise a newcomer cannot act on.
warnings.filterwarnings("ignore", category=SecurityWarning, message=".*superuser privileges")

app = Celery("scc")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The one beat schedule (docs/operations.md, "Policies and beat"). Each tick `expires` before the
# next one is due, so when workers fall behind stale ticks are dropped instead of piling up; each
# task's time budget and limits fit inside its interval (sessions_app/tasks.py).
POLICY_SWEEP_INTERVAL = 30.0
HOUSEKEEPING_INTERVAL = 600.0
BULK_RESUME_INTERVAL = 60.0
app.conf.beat_schedule = {
    "policy-sweep": {
        "task": "sessions_app.tasks.policy_sweep",
        "schedule": POLICY_SWEEP_INTERVAL,
        "options": {"expires": POLICY_SWEEP_INTERVAL - 5},
    },
    "archive-sweep": {
        "task": "sessions_app.tasks.archive_sweep",
        "schedule": HOUSEKEEPING_INTERVAL,
        "options": {"expires": HOUSEKEEPING_INTERVAL - 60},
    },
    "retention-purge": {
        "task": "sessions_app.tasks.retention_purge",
        "schedule": HOUSEKEEPING_INTERVAL,
        "options": {"expires": HOUSEKEEPING_INTERVAL - 60},
    },
    # A bulk run whose task was lost is queued again (a run does each session once).
    "bulk-resume-stalled": {
        "task": "sessions_app.tasks.bulk_resume_stalled",
        "schedule": BULK_RESUME_INTERVAL,
        "options": {"expires": BULK_RESUME_INTERVAL - 5},
    },
    # Idempotency keys are kept at least 24 hours (services/idempotency.py), then purged.
    "idempotency-purge": {
        "task": "sessions_app.tasks.idempotency_purge",
        "schedule": HOUSEKEEPING_INTERVAL,
        "options": {"expires": HOUSEKEEPING_INTERVAL - 60},
    },
}
