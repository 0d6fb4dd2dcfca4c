"""Who is on the other end of a dashboard socket: channels' session and user lookup, run off
the process's one shared database thread and shared between handshakes of one browser.

channels' AuthMiddlewareStack reads the session and the user through database_sync_to_async,
which is thread sensitive: every handshake's two queries take turns on the single thread that
also runs the process's other thread-sensitive database work. When every dashboard reconnects
at once (a restart), the handshakes queue there, and daphne drops any that is not accepted
within 5 s. The lookup keeps nothing between calls, so here it runs on the loop's worker
threads, each with a connection of its own from the pool.

The tabs of one browser send the same session cookie and reconnect together. A lookup that
started after a handshake arrived is as fresh as the handshake's own would be (a logout or a
password change committed before it is seen), so every handshake of one session that arrived
before a lookup started takes that lookup's user, each a copy of its own.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from channels.auth import AuthMiddleware, get_user
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.conf import settings

from command_center.snapshots import SharedBuilds

# channels' get_user is wrapped to run on the shared thread; this is the function inside.
_get_user = get_user.func

lookups = SharedBuilds()


class SharedAuthMiddleware(AuthMiddleware):  # type: ignore[misc]
    """AuthMiddleware whose session and user lookups run in parallel, one per session at a
    time."""

    async def resolve_scope(self, scope: dict[str, Any]) -> None:
        arrived = time.monotonic()
        session_key = scope["cookies"].get(settings.SESSION_COOKIE_NAME) or None
        user = await lookups.get(session_key, joined_at=arrived, make=lambda: _get_user(scope))
        # Each socket keeps what it learns about its user (its access) on its own object.
        scope["user"]._wrapped = copy.copy(user)


def auth_middleware_stack(inner: Any) -> Any:
    """As channels' AuthMiddlewareStack: cookies, then the session, then the user."""
    return CookieMiddleware(SessionMiddleware(SharedAuthMiddleware(inner)))
