"""Re-run the current redaction rules over stored transcripts, run metadata and commands."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sessions_app.services.rescan import redact_stored


def _since(raw: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(raw), datetime.min.time())
        except ValueError:
            raise CommandError(
                f"--since must be an ISO date or date-time (2026-01-31 or 2026-01-31T12:00), "
                f"got {raw!r}"
            ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Apply the current redaction rules to stored data: events (payload and actor), sessions "
        "(title, run metadata, error, step and checkpoint names) and runtime commands (payload and "
        "result). Prints how many values each rule changed, never the values. Each touched "
        "session gets a `redaction` action event."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would change; write nothing"
        )
        parser.add_argument(
            "--since", help="Only rows created at or after this ISO date or date-time (UTC)"
        )
        parser.add_argument("--batch-size", type=int, default=500, help="Rows per transaction")

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        since = _since(opts["since"]) if opts["since"] else None
        report = redact_stored(dry_run=opts["dry_run"], since=since, batch_size=opts["batch_size"])
        self.stdout.write(json.dumps(report.as_dict(), indent=2))
