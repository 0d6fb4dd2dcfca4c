"""Credential redaction for agent-session transcripts.

Every text field of every event passes through :func:`redact_text` (or
:func:`redact_payload` for JSON-like structures) before it is stored. A secret
is recorded by *what it is*, never by its value: ``GITHUB_TOKEN=ghp_...`` is
stored as ``GITHUB_TOKEN=[REDACTED:github_token]``.

This sits on the ingestion hot path, so all rules live in one compiled
alternation (one named group per rule) that is scanned once per string; Python
code only runs for the rare matches.

How the scanner stays fast: CPython's ``re`` can only skip ahead quickly when
a pattern begins with a fixed set of characters. So every rule *enters* on one
of a few characters that are rare in ordinary text (``- = : A J g k x``),
the scanner consumes that character, and the next character selects the rule
with a cheap check (sre tests a branch's leading literal or class before
trying it). Only then do lookbehinds confirm the full prefix. This means:

* assignments (``NAME=value``, ``"name": "value"``, ``--flag value``) and
  ``Authorization`` headers enter on the separator, and a lookbehind checks the
  name before it, instead of entering on every letter that could start a
  name;
* a few credentials are entered a few characters in (a JWT at the ``J`` of
  ``eyJ``, ``sk-``/``sk_`` keys at the ``k``); ``_BACKSTEP`` says how far the
  replacement reaches back before the match;
* assignment values are captured in lookaheads rather than consumed, so a
  value that is vetoed (it turned out to be code or a placeholder) is still
  scanned for other credentials; overlapping edits are resolved afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["RULE_NAMES", "RedactionResult", "redact_payload", "redact_text"]

_MARKER: Final = "[REDACTED:{}]"


def _ci(word: str) -> str:
    """Case-insensitive spelling of an ASCII word as explicit classes.

    ``(?i:...)`` would compile to case-folding opcodes that sre cannot
    pre-check inside a branch, and under Unicode folding ``k`` also matches
    the Kelvin sign.
    """
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


# Characters that may surround a credential without being part of it.
_TOKEN_CHARS = r"A-Za-z0-9_-"
_NO_TOKEN_BEFORE = rf"(?<![{_TOKEN_CHARS}])"
_NO_TOKEN_AFTER = rf"(?![{_TOKEN_CHARS}])"

# ---------------------------------------------------------------------------
# Secret names
# ---------------------------------------------------------------------------

# A name says "secret" when it *ends* in one of these words. Three spellings:
#   * the whole name, or after a non-alphanumeric ("token", "GITHUB_TOKEN",
#     "--password", "x-api-key"): _WORDS_ALONE;
#   * only as a suffix after "_" or "-" ("DB_PASS", "api_key"): a bare "key"
#     or "pass" is far too common in code and prose to mean anything;
#   * camelCase suffix ("apiKey", "clientSecret", "SecretAccessKey").
# Requiring the name to end at the word keeps "max_tokens", "token_count" and
# "tokenizer" out.
_WORDS_ALONE: Final = ("token", "secret", "password", "passwd", "passphrase", "apikey")
_WORDS_SUFFIX: Final = ("key", "pass", "pwd")
_WORDS_CAMEL: Final = ("Token", "Secret", "Key", "Password", "Passwd", "Passphrase", "Pwd")

# Pieces of "<name><closing quote?><blanks?><separator>", looked at backwards.
_SEP: Final = "[=:]"
_BLANK: Final = r"[ \t]"
_QUOTE: Final = "[\"']"
_ESCAPED_QUOTE: Final = r"\\[\"']"
_MAX_BLANKS: Final = 6  # aligned assignments: "SECRET_KEY     = ..."


def _name_variants(
    alone: Iterable[str], suffix: Iterable[str] = (), camel: Iterable[str] = ()
) -> list[tuple[str, int, str]]:
    """(regex, width, last two letters) for every spelling of a name's tail."""
    variants = [(f"{_ci(w)}(?<![A-Za-z0-9]{_ci(w)})", len(w), w[-2:]) for w in alone]
    variants += [(f"[_-]{_ci(w)}", len(w) + 1, w[-2:]) for w in suffix]
    variants += [(f"[a-z0-9]{w}", len(w) + 1, w[-2:]) for w in camel]
    return variants


def _follows_name(variants: list[tuple[str, int, str]]) -> str:
    """Assert that the separator just consumed follows one of the names.

    Lookbehinds must be fixed-width, and spelling out every (name, closing
    quote, blanks) combination makes each "=" or ":" cost hundreds of
    alternatives. Instead this is a small decision tree: what precedes the
    separator fixes the gap (nothing, a quote, an escaped quote, blanks),
    then one assertion on the name's last two letters rejects almost every
    candidate before the full names are tried, grouped by width.
    """
    tails = "(?:" + "|".join(sorted({_ci(tail.lower()) for _, _, tail in variants})) + ")"
    by_width: dict[int, list[str]] = {}
    for regex, width, _ in variants:
        by_width.setdefault(width, []).append(regex)

    def name_then(gap: str) -> str:
        names = "|".join(
            f"(?<=(?:{'|'.join(regexes)}){gap}{_SEP})" for _, regexes in sorted(by_width.items())
        )
        return f"(?<={tails}{gap}{_SEP})(?:{names})"

    blank_runs = "|".join(
        f"(?<=[A-Za-z]{_BLANK}{{{n}}}{_SEP}){name_then(f'{_BLANK}{{{n}}}')}"
        for n in range(2, _MAX_BLANKS + 1)
    )
    return (
        "(?:"
        # NAME=value, name: value
        f"(?<=[A-Za-z]{_SEP}){name_then('')}"
        # "name": "value", 'name' => 'value', \"name\": \"value\"
        f"|(?<={_QUOTE}{_SEP})(?:(?<=[A-Za-z]{_QUOTE}{_SEP}){name_then(_QUOTE)}"
        f"|(?<={_ESCAPED_QUOTE}{_SEP}){name_then(_ESCAPED_QUOTE)})"
        # NAME = value, "name" : value, aligned NAME    = value
        f"|(?<={_BLANK}{_SEP})(?:(?<=[A-Za-z]{_BLANK}{_SEP}){name_then(_BLANK)}"
        f"|(?<={_QUOTE}{_BLANK}{_SEP}){name_then(_QUOTE + _BLANK)}"
        f"|(?<={_BLANK}{{2}}{_SEP})(?:{blank_runs}))"
        ")"
    )


_SECRET_NAME_VARIANTS: Final = _name_variants(_WORDS_ALONE, _WORDS_SUFFIX, _WORDS_CAMEL)

# ---------------------------------------------------------------------------
# Assignment values (captured in lookaheads, see module docstring)
# ---------------------------------------------------------------------------

# Escaped quotes first: transcripts are full of JSON serialised inside JSON
# strings ({\"api_key\": \"...\"}). Possessive quantifiers keep the scan
# linear on unterminated quotes.
_VALUE: Final = (
    r"(?:"
    r'\\"[^"\\\n]{1,4096}+\\"'
    r"|\\'[^'\\\n]{1,4096}+\\'"
    r'|"[^"\\\n]*+(?:\\.[^"\\\n]*+)*+"'
    r"|'[^'\\\n]*+(?:\\.[^'\\\n]*+)*+'"
    # Unquoted: must not start like a flag, an operator, a collection, a
    # shell expansion or a mask; stops where a token ends in shell, URL query
    # strings, JSON or call arguments.
    r"|[^\s\"'`,;&|()\[\]{}<>=$*\\-][^\s\"'`,;&|)\]}>\\]*+"
    r")"
)

# ---------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------
# (name, entry characters, second-character check, body). The scanner consumes
# the entry character; a rule with a second-character check is only tried when
# the next character passes it, and its body starts with a lookbehind that
# confirms the entry character and the rest of the prefix. A rule without one
# is always tried, so its body must start with a lookbehind that is cheap to
# fail. Groups named "<rule>_v" hold the part to replace when it is not the
# whole match. Earlier rules win when two match at the same place.


def _token_start(prefix: str) -> str:
    """Lookbehind: ``prefix`` just ended and was not the tail of a longer token.

    The literal is checked before the boundary because it fails sooner.
    """
    return f"(?<={prefix})(?<![{_TOKEN_CHARS}]{prefix})"


_RULES: Final[tuple[tuple[str, str, str, str], ...]] = (
    (
        "private_key",
        "-",
        "-",
        # The whole block. A transcript may be cut mid-key; without an END
        # line, the whole base64 lines that follow (real or JSON-escaped line
        # breaks) are taken instead. The bounded lazy scan keeps many BEGIN
        # lines without END from going quadratic.
        r"(?<=--)---BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[\s\S]{0,16384}?-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
        r"|(?:(?:\r?\n|\\r?\\n)[ \t]*[A-Za-z0-9+/=]{4,100}(?=[\r\n\\\"']|\Z))*)",
    ),
    (
        "aws_access_key_id",
        "A",
        "[KSBC]",
        r"(?<=A[KSBC])(?<![A-Za-z0-9]A[KSBC])(?:(?<=[KSB])IA|(?<=C)CA)"
        r"[A-Z0-9]{16}(?![A-Za-z0-9])",
    ),
    (
        "google_api_key",
        "A",
        "I",
        f"{_token_start('AI')}za[{_TOKEN_CHARS}]{{35}}{_NO_TOKEN_AFTER}",
    ),
    (
        "github_token",
        "g",
        "[hi]",
        f"{_token_start('g[hi]')}"
        r"(?:(?<=h)[pousr]_[A-Za-z0-9]{36,255}|(?<=i)thub_pat_[A-Za-z0-9_]{22,255})"
        f"{_NO_TOKEN_AFTER}",
    ),
    (
        "gitlab_token",
        "g",
        "l",
        f"{_token_start('gl')}(?:pat|dt|rt|ptt|soat|cbt)-[{_TOKEN_CHARS}]{{20,}}"
        r"(?:\.[A-Za-z0-9_-]+)*",
    ),
    (
        "slack_token",
        "x",
        "[oa]",
        f"{_token_start('x[oa]')}"
        r"(?:(?<=o)x[abposr]-[A-Za-z0-9-]{10,}|(?<=a)pp-\d-[A-Za-z0-9-]{10,})",
    ),
    (
        "slack_webhook",
        # Enters on the "k." of the host; the host and path prefix stay
        # readable, the team/channel/secret path is replaced.
        "k",
        ".",
        r"(?<=hooks\.slack\.)com/(?:services|workflows|triggers)/"
        r"(?P<slack_webhook_v>[A-Za-z0-9_/-]{8,})",
    ),
    (
        "stripe_key",
        "k",
        "_",
        f"{_token_start('[srp]k_')}(?:(?<=[sr]k_)(?:live|test)|(?<=pk_)live)"
        f"_[A-Za-z0-9]{{10,}}{_NO_TOKEN_AFTER}",
    ),
    (
        "anthropic_key",
        "k",
        "-",
        f"{_token_start('sk-')}ant-[{_TOKEN_CHARS}]{{20,}}",
    ),
    (
        "openai_key",
        "k",
        "-",
        # Real keys are random base62, so demanding a digit costs nothing and
        # keeps slugs such as "sk-learn-style-pipeline-helpers" out.
        f"{_token_start('sk-')}(?:proj-|svcacct-|admin-)?"
        f"(?=[A-Za-z_-]{{0,200}}[0-9])[{_TOKEN_CHARS}]{{20,}}",
    ),
    (
        "url_password",
        ":",
        "/",
        # Only "://" is consumed; user and password are looked at, not eaten,
        # so a token used as the user name is still found on its own.
        r"(?<=:/)/(?=[^\s:/@?#\"'<>]{0,256}+:(?P<url_password_v>[^\s/@?#\"'<>]{1,256}+)@)",
    ),
    (
        "jwt",
        # The character after "eyJ" is any base64url character, so no
        # second-character check: the lookbehind on "eyJ" comes first.
        "J",
        "",
        f"{_token_start('eyJ')}[{_TOKEN_CHARS}]{{8,}}"
        f"\\.eyJ[{_TOKEN_CHARS}]{{8,}}\\.[{_TOKEN_CHARS}]{{8,}}",
    ),
    (
        "authorization_header",
        "=:",
        "",
        f"(?<={_SEP}){_follows_name(_name_variants(['authorization']))}"
        + r"[ \t]*+(?:\\?[\"'])?"
        + rf"(?:(?P<authorization_header_scheme>{_ci('bearer')}|{_ci('basic')}|{_ci('token')}"
        + rf"|{_ci('bot')})[ \t]++)?"
        + r"(?=(?P<authorization_header_v>[^\s\"'`,;\\]++))",
    ),
    (
        "secret_assignment",
        "-=:",
        "",
        r"(?<=[-=:])(?:"
        # CLI flags may take the value after a blank ("--password hunter2"),
        # which only means something right after a "--flag" name.
        r"-(?<=--)(?<![A-Za-z0-9-]--)(?:[A-Za-z0-9]+-)*+"
        + "(?:"
        + "|".join(_ci(w) for w in (*_WORDS_ALONE, *_WORDS_SUFFIX))
        + ")"
        + r"(?![A-Za-z0-9_-])(?P<secret_assignment_cli>[ \t]++|=)"
        + f"|(?<={_SEP})"
        + _follows_name(_SECRET_NAME_VARIANTS)
        + r"(?:(?<==)>|(?<=:)=)?[ \t]*+"
        + r")"
        + rf"(?=(?P<secret_assignment_v>{_VALUE}))",
    ),
)

# Not a pattern of its own: AWS secret keys have no prefix, only the name
# ("aws_secret_access_key", STS's "SecretAccessKey") gives them away, so it
# refines a secret_assignment match.
_AWS_SECRET_RULE: Final = "aws_secret_access_key"

RULE_NAMES: Final[tuple[str, ...]] = (*(rule[0] for rule in _RULES), _AWS_SECRET_RULE)

_ENTRY: Final = "".join(sorted({c for _, entry, _, _ in _RULES for c in entry}))


def _build_scanner() -> re.Pattern[str]:
    checked = [f"{check}(?P<{name}>{body})" for name, _, check, body in _RULES if check]
    unchecked = [(name, entry, body) for name, entry, check, body in _RULES if not check]
    # Rules without a second-character check share one lookbehind on their
    # entry characters, so the other entries pay one assertion for all of
    # them.
    entries = "".join(sorted({c for _, entry, _ in unchecked for c in entry}))
    shared = f"(?<=[{re.escape(entries)}])(?:" + "|".join(
        f"(?P<{name}>{body})" for name, _, body in unchecked
    )
    return re.compile(f"[{re.escape(_ENTRY)}](?:{'|'.join(checked)}|{shared}))")


_SCANNER: Final = _build_scanner()

# How many characters before the match a credential starts (see docstring).
_BACKSTEP: Final = {"jwt": 2, "stripe_key": 1, "anthropic_key": 1, "openai_key": 1}

# Rules that identify a credential by its own shape; the candidates for "the
# most specific rule" of an assignment or header value.
_SHAPE_RULES: Final = frozenset(RULE_NAMES) - {
    "url_password",
    "authorization_header",
    "secret_assignment",
    _AWS_SECRET_RULE,
}

# ---------------------------------------------------------------------------
# Value vetting (runs only on matches, so plain Python is fine here)
# ---------------------------------------------------------------------------

_PLACEHOLDER: Final = re.compile(
    r"""
      \$\{[^}]*\}.*          # ${VAR}, ${VAR:-default}
    | \$\(.*\)               # $(command)
    | \$[A-Za-z_]\w*         # $VAR
    | <[^>]*>                # <your-key>
    | \{\{.*\}\}             # {{ secrets.X }}
    | \{[^{}]*\}             # {password}: format fields, f-strings
    | %\(?\w*\)?s            # %s, %(password)s
    | \[REDACTED[^\]]*\]     # already redacted: keeps redaction idempotent
    | (.)\1*                 # xxxxxx, ******, ......
    | [xX*•._\ -]+           # masks
    | .*(?:\*\*\*|•••|[xX]{4}|\.\.\.|…).*
    | (?i:your[-_ ]?.*)
    | (?i:(?:insert|enter|replace|put|my|some|the)[-_ ].*)
    | (?i:.*[-_ ]here)
    | (?i:changeme|change_me|placeholder|example|dummy|redacted|hidden|secret|
        password|passwd|token|apikey|api_key|undefined|none|null|nil|true|false|
        required|optional|string|str|bytes|int|bool|any|unknown|empty|default|
        not_set|notset|unset|masked)
    """,
    re.VERBOSE | re.DOTALL,
)
# Numbers, optionally with a unit: sizes, timeouts, ports, versions.
_NUMERIC: Final = re.compile(
    r"[+-]?v?\d[\d_,.:]*(?:[eE][+-]?\d+)?(?:[kKMGT]i?[bB]?|ms|[smhd%]|px)?"
)
_PATH: Final = re.compile(
    r"(?:~|\.{1,2})?/.*"  # /abs, ./rel, ../rel, ~/home
    r"|[A-Za-z]:[\\/].*"  # C:\windows
    r"|[\w.-]+(?:/[\w.-]+)*\.[A-Za-z][A-Za-z0-9]{0,4}"  # dir/file.ext, key.pem
)
# Code rather than data: call expressions, subscripts, attribute chains.
_CODE: Final = re.compile(r"[A-Za-z_][\w.]*[(\[].*|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
_IDENTIFIER: Final = re.compile(r"[A-Za-z_]\w*")
# Identifiers made of plain words ("created_at", "sessionData") are field or
# variable names even when quoted; generated secrets are not made of words.
_WORDY_IDENTIFIER: Final = re.compile(r"[a-z]+(?:_[a-z]+)+|[a-z]+(?:[A-Z][a-z]+)+")
_DIGIT_ALPHA_SWITCH: Final = re.compile(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")
_PROSE: Final = re.compile(r"[A-Za-z][A-Za-z'’,.!?:-]*(?:\s+[A-Za-z][A-Za-z'’,.!?:-]*)+")
_AWS_SECRET_NAME: Final = re.compile(r"(?:aws)?secretaccesskey", re.IGNORECASE)
_AWS_SECRET_VALUE: Final = re.compile(r"[A-Za-z0-9/+]{40}")
_NAME_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_SCHEMES: Final = frozenset({"bearer", "basic", "token", "bot"})
_MIN_SECRET_LEN: Final = 6


def _looks_random(value: str) -> bool:
    """Whether an identifier-shaped value is really a random string."""
    if value.isdigit() or not any(c.isdigit() for c in value):
        return False
    switches = len(_DIGIT_ALPHA_SWITCH.findall(value))
    return switches >= 3 or (len(value) >= 16 and "_" not in value)


def _is_secret_value(value: str, *, literal: bool) -> bool:
    """Whether an assignment value should be treated as a credential.

    ``literal`` says the value is data (quoted, env file, CLI flag); otherwise
    it may be source code, where ``token = tokenizer`` names a variable.
    """
    if len(value) < _MIN_SECRET_LEN or value.isspace():
        return False
    if _PLACEHOLDER.fullmatch(value) or _NUMERIC.fullmatch(value) or _PATH.fullmatch(value):
        return False
    if _CODE.fullmatch(value):
        return False  # calls, attribute chains: settings.SECRET_KEY, os.environ[
    if _WORDY_IDENTIFIER.fullmatch(value):
        return False
    if not literal and _IDENTIFIER.fullmatch(value) and not _looks_random(value):
        return False
    # A sentence under a secret-looking name is a message, not a credential.
    return not (" " in value and _PROSE.fullmatch(value.strip()))


def _shape_rule(value: str) -> str | None:
    """Name of the first shaped credential inside ``value``, if any."""
    for m in _SCANNER.finditer(value):
        if m.lastgroup in _SHAPE_RULES:
            return m.lastgroup
    return None


def _unquote(raw: str) -> tuple[int, int]:
    """Offsets of a matched value's content inside its quotes."""
    for quote in ('\\"', "\\'", '"', "'"):
        n = len(quote)
        if len(raw) >= 2 * n and raw.startswith(quote) and raw.endswith(quote):
            return n, len(raw) - n
    return 0, len(raw)


# An edit replaces text[start:end] with the marker of ``rule``.
_Edit = tuple[int, int, str]


def _edit_for(m: re.Match[str]) -> _Edit | None:
    rule = m.lastgroup
    assert rule is not None
    if rule == "secret_assignment":
        return _assignment_edit(m)
    if rule == "authorization_header":
        return _authorization_edit(m)
    if rule == "slack_webhook":
        return (*m.span("slack_webhook_v"), rule)
    if rule == "url_password":
        start, end = m.span("url_password_v")
        password = m.string[start:end]
        if _PLACEHOLDER.fullmatch(password):
            return None
        return start, end, _shape_rule(password) or rule
    return m.start() - _BACKSTEP.get(rule, 0), m.end(), rule


def _authorization_edit(m: re.Match[str]) -> _Edit | None:
    start, end = m.span("authorization_header_v")
    credential = m.string[start:end]
    shaped = _shape_rule(credential)
    if shaped:
        return start, end, shaped
    has_scheme = m.group("authorization_header_scheme") is not None
    if (
        credential.lower() in _SCHEMES
        or len(credential) < _MIN_SECRET_LEN
        or _PLACEHOLDER.fullmatch(credential)
        # Credentials are never a plain word; a word here means prose
        # ("Authorization: Bearer tokens are...", "Authorization: required").
        or (credential.isalpha() and (not has_scheme or len(credential) < 20))
    ):
        return None
    return start, end, "authorization_header"


def _assignment_edit(m: re.Match[str]) -> _Edit | None:
    start, end = m.span("secret_assignment_v")
    raw = m.string[start:end]
    lo, hi = _unquote(raw)
    start, end = start + lo, start + hi
    value = raw[lo:hi]
    shaped = _shape_rule(value)
    if shaped:
        return start, end, shaped
    name = _name_before(m)
    if _AWS_SECRET_NAME.search(name.replace("_", "").replace("-", "")) and (
        _AWS_SECRET_VALUE.fullmatch(value)
    ):
        return start, end, _AWS_SECRET_RULE
    cli = m.group("secret_assignment_cli") is not None
    # An UPPER_CASE name is an environment variable or a constant, whose
    # unquoted value is a literal string (env files, shell, YAML env blocks);
    # a lower-case name is more likely code.
    literal = bool(lo) or cli or (name.upper() == name and any(c.isalpha() for c in name))
    if _is_secret_value(value, literal=literal):
        return start, end, "secret_assignment"
    return None


def _name_before(m: re.Match[str]) -> str:
    """The assigned name: the text before the separator, or the CLI flag."""
    if m.group("secret_assignment_cli") is not None:
        return m.group().split("=")[0].strip()
    text = m.string
    end = m.start()
    while end and text[end - 1] in " \t":
        end -= 1
    if end and text[end - 1] in "\"'":
        end -= 2 if end > 1 and text[end - 2] == "\\" else 1
    start = end
    while start and text[start - 1] in _NAME_CHARS:
        start -= 1
    return text[start:end]


def _redact(text: str, counts: dict[str, int]) -> str:
    edits = [edit for m in _SCANNER.finditer(text) if (edit := _edit_for(m))]
    if not edits:
        return text
    # Values are matched by lookahead, so edits can nest (an assignment whose
    # value is a GitHub token also yields the token's own match) or come out
    # of order (a token in a URL's user part follows the "://" match). Keep
    # the earliest, widest edit of every overlapping group.
    edits.sort(key=lambda e: (e[0], -e[1]))
    pieces: list[str] = []
    pos = 0
    for start, end, rule in edits:
        if start < pos:
            continue
        pieces += (text[pos:start], _MARKER.format(rule))
        counts[rule] = counts.get(rule, 0) + 1
        pos = end
    pieces.append(text[pos:])
    return "".join(pieces)


@dataclass(frozen=True)
class RedactionResult:
    """Redacted text and how many replacements each rule made."""

    text: str
    counts: dict[str, int]


def redact_text(text: str) -> RedactionResult:
    """Replace every credential in ``text`` with ``[REDACTED:<rule>]``.

    Assignments keep their name, separator and quotes (``API_KEY="..."`` ->
    ``API_KEY="[REDACTED:secret_assignment]"``, or the most specific rule that
    recognises the value, e.g. ``github_token``), headers keep their scheme,
    URLs keep user and host. ``counts`` maps rule name to replacements made
    and is empty when the text comes back unchanged (the same object).
    """
    counts: dict[str, int] = {}
    return RedactionResult(_redact(text, counts), counts)


_SECRET_KEY_NAME: Final = re.compile(
    "(?:" + "|".join(regex for regex, _, _ in _SECRET_NAME_VARIANTS) + r")\Z"
)
_AUTHORIZATION_KEY: Final = re.compile(r"(?:proxy-)?authorization", re.IGNORECASE)
_HEADER_PREFIX: Final = "Authorization: "


def _redact_string(value: str, key: object, counts: dict[str, int]) -> str:
    if isinstance(key, str) and _AUTHORIZATION_KEY.fullmatch(key):
        # A headers dict: redact the value as the header line it stands for,
        # which keeps the scheme ("Bearer [REDACTED:...]"). Edits never reach
        # into the prefix, so slicing it off again is safe.
        return _redact(_HEADER_PREFIX + value, counts)[len(_HEADER_PREFIX) :]
    fired = len(counts), sum(counts.values())
    redacted = _redact(value, counts)
    if (
        fired == (len(counts), sum(counts.values()))
        and isinstance(key, str)
        and _SECRET_KEY_NAME.search(key)
        and _is_secret_value(value, literal=True)
    ):
        counts["secret_assignment"] = counts.get("secret_assignment", 0) + 1
        return _MARKER.format("secret_assignment")
    return redacted


def _walk(value: Any, key: object, counts: dict[str, int]) -> Any:
    if isinstance(value, str):
        return _redact_string(value, key, counts)
    if isinstance(value, dict):
        return {k: _walk(v, k, counts) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, None, counts) for v in value]
    if isinstance(value, tuple):
        return tuple(_walk(v, None, counts) for v in value)
    return value


def redact_payload(value: Any) -> tuple[Any, dict[str, int]]:
    """Redact every string in a JSON-like structure.

    Walks dicts, lists and tuples recursively and returns a new structure
    (the input is not modified) plus the merged rule counts. Dict keys are
    kept as they are. A string under a key that names a secret
    (``{"api_key": "..."}``) is replaced whole with
    ``[REDACTED:secret_assignment]``, unless a more specific rule already
    matched inside it; a string under an ``Authorization`` key is treated as
    that header. Other scalars are returned unchanged.
    """
    counts: dict[str, int] = {}
    return _walk(value, None, counts), counts
