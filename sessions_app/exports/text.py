"""Text helpers the transcript renderings share: a file edit as a unified diff, any payload
value as readable text, and a Markdown code fence that its content cannot close."""

from __future__ import annotations

import difflib
import json
import re
from typing import Any

_BACKTICKS = re.compile(r"`{3,}")


def pretty(value: Any) -> str:
    """Strings as they are; anything else as indented JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return str(value)


def diff_lines(payload: Any, *, headers: bool = False) -> list[tuple[str, str]]:
    """A file edit's before/after as unified-diff lines tagged add / del / hunk / ctx (and
    `file` for the ---/+++ lines when `headers`)."""
    if not isinstance(payload, dict):
        return []
    before = str(payload.get("before") or "").splitlines()
    after = str(payload.get("after") or "").splitlines()
    path = str(payload.get("path") or "file")
    lines: list[tuple[str, str]] = []
    for line in difflib.unified_diff(
        before, after, fromfile=f"a/{path}", tofile=f"b/{path}", lineterm="", n=3
    ):
        if line.startswith(("---", "+++")):
            if headers:
                lines.append(("file", line))
            continue
        kind = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "ctx")
        lines.append((kind, line))
    return lines


def fenced(text: str, info: str = "") -> str:
    """A fenced code block one backtick longer than any run of backticks inside, so the
    content shows verbatim whatever it holds."""
    longest = max((len(m.group()) for m in _BACKTICKS.finditer(text)), default=2)
    fence = "`" * (longest + 1)
    body = text if text.endswith("\n") else text + "\n"
    return f"{fence}{info}\n{body}{fence}\n"
