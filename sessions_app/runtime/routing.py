"""The runtime command socket's route."""

from __future__ import annotations

from typing import Any

from django.urls import path

from sessions_app.runtime.consumer import RuntimeConsumer

websocket_urlpatterns: list[Any] = [
    # Runtimes authenticate with a bearer token and send no cookies (and usually no Origin),
    # so an origin check would refuse them and protect nothing.
    path("ws/runtime/", RuntimeConsumer.as_asgi()),
]
