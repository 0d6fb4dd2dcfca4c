"""A live operation filled into the wrapper rendered once (fragments.live_op) is what rendering
oob.html#op gives, escaping included."""

from __future__ import annotations

from typing import Any

import pytest
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from command_center import fragments


@pytest.mark.parametrize(
    ("op", "target", "content"),
    [
        ("remove", "session-1", ""),
        ("insert", "rows-live", SafeString('<a id="x">a &amp; b</a>')),
        ("replace", 'cc-"quoted"<target>', "<b>plain text is escaped</b> & so on"),
    ],
)
def test_a_live_op_is_what_rendering_its_partial_gives(op: str, target: str, content: Any) -> None:
    rendered = render_to_string(
        "command_center/oob.html#op", {"op": op, "target": target, "content": content}
    )
    assert fragments.live_op(op, target, content) == rendered
