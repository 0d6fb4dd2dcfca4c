"""Websocket routes, each wrapped in the protection that fits how it authenticates."""

from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from command_center.consumers import CommandCenterConsumer
from sessions_app.runtime_consumer import RuntimeConsumer

websocket_urlpatterns: list[Any] = [
    # Browsers authenticate with the session cookie, so a foreign page must not be able to open
    # this socket in their name: the Origin must be one of ALLOWED_HOSTS.
    path(
        "ws/command-center/",
        AllowedHostsOriginValidator(AuthMiddlewareStack(CommandCenterConsumer.as_asgi())),
    ),
    # Runtimes authenticate with a bearer token and send no cookies (and usually no Origin),
    # so an origin check would refuse them and protect nothing.
    path("ws/runtime/", RuntimeConsumer.as_asgi()),
]
