from __future__ import annotations

# The API fixtures (tokens, clients) serve the fault tests too.
from tests.api.conftest import (  # noqa: F401
    in_process,
    personal,
    runtime,
    runtime_token,
    shared_connection,
)
