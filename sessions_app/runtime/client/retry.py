"""When to retry a request, and how long to wait between attempts."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

# What a restarting or overloaded server answers: worth waiting out, unlike any other refusal.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter. `attempts=None` retries forever (a demo or daemon that
    should outlive a server restart); the default gives up after about a minute."""

    initial: float = 0.5
    maximum: float = 15.0
    factor: float = 2.0
    jitter: float = 0.25
    attempts: int | None = 8

    def delays(self) -> Iterator[float]:
        delay = self.initial
        n = 0
        while self.attempts is None or n < self.attempts - 1:
            n += 1
            # Jitter spreads reconnects; it protects nothing, so no CSPRNG.
            yield delay * (1 + random.uniform(-self.jitter, self.jitter))  # noqa: S311
            delay = min(self.maximum, delay * self.factor)
