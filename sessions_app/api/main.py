from __future__ import annotations

from typing import TYPE_CHECKING

from ninja import NinjaAPI

from sessions_app.api import errors, exports, operator, runtime, sessions
from sessions_app.api.auth import TokenAuth
from sessions_app.api.parser import StrictJSONParser

if TYPE_CHECKING:
    from ninja.operation import Operation


class API(NinjaAPI):
    def get_openapi_operation_id(self, operation: Operation) -> str:
        # Function names are unique across the routers; short ids read better in clients.
        return operation.view_func.__name__


api = API(
    title="Sessions Command Center API",
    version="1",
    description="Agent runtimes report sessions and receive operators' commands; personal tokens "
    "read sessions and act on them. Authenticate with `Authorization: Bearer <token>` "
    "(`python manage.py create_token`). See docs/api.md.",
    urls_namespace="api-v1",
    auth=TokenAuth(),
    parser=StrictJSONParser(),
)
errors.install(api)
api.add_router("", sessions.router)
api.add_router("", operator.router)
api.add_router("", runtime.router)
api.add_router("", exports.router)
