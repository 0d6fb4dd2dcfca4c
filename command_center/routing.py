"""The dashboard socket's route, wrapped in the protection that fits cookie authentication."""

from __future__ import annotations

from typing import Any

from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from command_center.consumers import CommandCenterConsumer
from command_center.socket_auth import auth_middleware_stack

websocket_urlpatterns: list[Any] = [
    # Browsers authenticate with the session cookie, so a foreign page must not be able to open
    # this socket in their name: the Origin must be one of ALLOWED_HOSTS.
    path(
        "ws/command-center/",
        AllowedHostsOriginValidator(auth_middleware_stack(CommandCenterConsumer.as_asgi())),
    ),
]
