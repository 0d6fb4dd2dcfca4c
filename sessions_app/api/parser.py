from __future__ import annotations

import json
import math
from typing import Any, NoReturn, cast

from django.http import HttpRequest
from ninja.parser import Parser

from sessions_app import edge


def _reject_constant(name: str) -> NoReturn:
    # Python's json accepts NaN and Infinity; JSON (and PostgreSQL's jsonb) do not.
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 overflows to inf, which no database stores as JSON
        raise ValueError(f"the number {text[:40]} is too large")
    return value


class StrictJSONParser(Parser):
    """The API's one edge for bodies: a parse failure is a 400, a body nested too deeply or
    holding text the database cannot store is a 422 naming the field (edge.EdgeProblem, which
    ninja hands to api/errors.py as the cause of its HttpError)."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        try:
            value = json.loads(
                request.body, parse_constant=_reject_constant, parse_float=_finite_float
            )
        except RecursionError:
            raise edge.EdgeProblem(
                "body", f"is nested more than {edge.MAX_JSON_DEPTH} levels deep"
            ) from None
        edge.check_json(value)
        return cast(dict[str, Any], value)
