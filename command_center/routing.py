from __future__ import annotations

from typing import Any

from django.urls import path

from command_center.consumers import CommandCenterConsumer
from sessions_app.runtime_consumer import RuntimeConsumer

websocket_urlpatterns: list[Any] = [
    path("ws/command-center/", CommandCenterConsumer.as_asgi()),
    path("ws/runtime/", RuntimeConsumer.as_asgi()),
]
