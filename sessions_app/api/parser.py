from __future__ import annotations

import json
import math
from typing import Any, NoReturn, cast

from django.http import HttpRequest
from ninja.parser import Parser


def _reject_constant(name: str) -> NoReturn:
    # Python's json accepts NaN and Infinity; JSON (and PostgreSQL's jsonb) do not.
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 overflows to inf, which no database stores as JSON
        raise ValueError(f"the number {text[:40]} is too large")
    return value


class StrictJSONParser(Parser):
    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        return cast(
            dict[str, Any],
            json.loads(request.body, parse_constant=_reject_constant, parse_float=_finite_float),
        )
