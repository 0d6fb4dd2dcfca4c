from __future__ import annotations

from collections.abc import Iterator

import pytest

# The API fixtures (tokens, clients) serve the fault tests too.
from tests.api.conftest import (  # noqa: F401
    in_process,
    personal,
    runtime,
    runtime_token,
    shared_connection,
)
from tests.integration.live_server import LiveServer, free_port, server_env


@pytest.fixture(scope="session")
def shared_daphne(django_db_setup: None) -> Iterator[LiveServer]:
    """One real daphne with the default settings, shared by the fault tests that need nothing
    special (each start costs seconds)."""
    server = LiveServer(free_port(), server_env(), name="daphne-faults")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def live_daphne(shared_daphne: LiveServer) -> LiveServer:
    """The shared daphne, running (a test may kill it and fail before it restarts it)."""
    if shared_daphne.process is None:
        shared_daphne.start()
    return shared_daphne
