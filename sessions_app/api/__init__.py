"""The runtime API (django-ninja), mounted at /api/v1/."""

from __future__ import annotations

from sessions_app.api.main import api

__all__ = ["api"]
