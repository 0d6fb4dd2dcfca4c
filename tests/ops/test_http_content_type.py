"""daphne's Content-Type parse (config/http_content_type.py) answers as Twisted's own."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config import http_content_type
from config.http_content_type import parse_content_type

twisted_parse = http_content_type._twisted_parse

TOKEN = st.text(alphabet="abcXYZ019!#$%&'*+.^_`|~-", min_size=1, max_size=8)


@pytest.mark.parametrize(
    "line",
    [
        b"application/json",
        b"Application/JSON; charset=utf-8",
        b"multipart/form-data; boundary=----x",
        b"application/x-www-form-urlencoded",
        b" text/plain ;charset=latin-1",
        b"application/json (a comment)",
        b'text/plain; charset="utf-8"',
        b"json",
        b"",
        b"a/b/c",
        b"\xff\xfe/x",
        b"text/pl\\ain",
        b"text/plain; a=\x85",
        b"text/plain;\r\n x=1",
    ],
)
def test_known_headers_parse_as_twisted_parses_them(line: bytes) -> None:
    assert outcome(parse_content_type, line) == outcome(twisted_parse, line)


def test_the_plain_case_does_not_reach_the_email_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []

    def recording(line: bytes) -> bytes:
        calls.append(line)
        return twisted_parse(line)

    monkeypatch.setattr(http_content_type, "_twisted_parse", recording)
    assert parse_content_type(b"Application/JSON; charset=utf-8") == b"application/json"
    assert calls == []
    # Positive control: an unusual header is handed over.
    assert parse_content_type(b"application/json (c)") == twisted_parse(b"application/json (c)")
    assert calls == [b"application/json (c)"]


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=40),
        st.builds(
            lambda t, s, rest, sp: f"{sp}{t}/{s}{rest}".encode(),
            TOKEN,
            TOKEN,
            st.sampled_from(["", ";", "; charset=utf-8", ' ; q="1"', "(x)", " x", "/y"]),
            st.sampled_from(["", " ", "\t"]),
        ),
    )
)
def test_any_header_parses_as_twisted_parses_it(line: bytes) -> None:
    assert outcome(parse_content_type, line) == outcome(twisted_parse, line)


def outcome(parse: Callable[[bytes], bytes], line: bytes) -> tuple[str, object]:
    """The media type, or the error raised (the email parser refuses line breaks)."""
    try:
        return "parsed", parse(line)
    except ValueError as error:
        return "refused", type(error)


def test_daphne_uses_it() -> None:
    from twisted.web import http

    import config.asgi  # noqa: F401  (installs it)

    assert http._parseContentType is parse_content_type
