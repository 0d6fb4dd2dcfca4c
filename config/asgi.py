"""ASGI entry point: HTTP through Django, websockets through Channels, each app's socket routes
composed here with the protection each route declares for itself."""

from __future__ import annotations

import os
import sys

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Django must be set up before anything imports models (the consumers do).
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from command_center.routing import websocket_urlpatterns as dashboard_routes  # noqa: E402
from config import daphne_close_codes, http_content_type  # noqa: E402
from config.api_handler import ApiHandler, by_path  # noqa: E402
from sessions_app.edge import SocketGuard  # noqa: E402
from sessions_app.runtime.routing import websocket_urlpatterns as runtime_routes  # noqa: E402

daphne_close_codes.install()
http_content_type.install()

# The event loop shares the interpreter lock with the threads that query and render (snapshots,
# session lookups). Each time the loop comes back from waiting for sockets it needs the lock, and
# a rendering thread gives it up only every switch interval (5 ms by default): with every
# dashboard reconnecting at once, each step of each handshake waited that long behind the
# renders. 1 ms halved a 1 000-socket storm's time (bench/sockets_bench.py).
GIL_SWITCH_INTERVAL_SECONDS = 0.001
sys.setswitchinterval(GIL_SWITCH_INTERVAL_SECONDS)

application = ProtocolTypeRouter(
    {
        # The API's requests take a lean handler of their own (config/api_handler.py).
        "http": by_path("/api/", ApiHandler(), django_asgi_app),
        # One place decides how a socket ends when its consumer raises (edge.SocketGuard).
        "websocket": SocketGuard(URLRouter([*dashboard_routes, *runtime_routes])),
    }
)
