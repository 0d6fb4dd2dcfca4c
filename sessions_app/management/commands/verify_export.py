"""Check a verifiable export bundle: intact (exit 0), or what was altered (exit 1)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sessions_app.exports import verify_bundle


class Command(BaseCommand):
    help = (
        "Verify a session's export bundle (the .zip of Export > bundle): every event of "
        "session.json against the SHA-256 chain in manifest.json, the header, the Markdown, the "
        "PDF, the redaction report, the action log and the server's seal. Says 'intact' (exit "
        "0) or names the first altered event by seq and event_id (exit 1); exit 2 when the file "
        "is not a bundle at all. See docs/exports.md."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the bundle, e.g. session-1a2b3c4d-bundle.zip")

    def handle(self, *args: Any, **options: Any) -> None:
        verdict = verify_bundle(options["file"])
        if not verdict.intact:
            raise CommandError(verdict.message, returncode=verdict.exit_code)
        self.stdout.write(verdict.message)
