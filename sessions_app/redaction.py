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
from bisect import bisect_left
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

# Unquoted values are looked at for at most _UNQUOTED_MAX characters, which
# keeps a long line full of candidates ("token=token=...") linear; Python
# extends the rare longer value to its real end.
_UNQUOTED_REST: Final = r"[^\s\"'`,;&|)\]}>\\]"
_UNQUOTED_MAX: Final = 1024
_UNQUOTED_TAIL: Final = re.compile(_UNQUOTED_REST + "{0,65536}+")

# Escaped quotes first: transcripts are full of JSON serialised inside JSON
# strings ({\"api_key\": \"...\"}). Quoted lengths are bounded and
# quantifiers possessive so that unterminated quotes stay linear; longer
# quoted credentials with a shape (JWTs, PEM blocks) have rules of their own.
_VALUE: Final = (
    r"(?:"
    r'\\"[^"\\\n]{1,4096}+\\"'
    r"|\\'[^'\\\n]{1,4096}+\\'"
    r'|"(?:[^"\\\n]|\\.){0,4096}+"'
    r"|'(?:[^'\\\n]|\\.){0,4096}+'"
    # Unquoted: must not start like a flag, an operator, a collection, a
    # shell expansion or a mask; stops where a token ends in shell, URL query
    # strings, JSON or call arguments.
    rf"|[^\s\"'`,;&|()\[\]{{}}<>=$*\\-]{_UNQUOTED_REST}{{0,{_UNQUOTED_MAX - 1}}}+"
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
        # The whole block. The body never contains five dashes, so it is
        # taken possessively up to the next "-----", which keeps runs of
        # BEGIN lines without END linear. A transcript may be cut mid-key;
        # without an END line, the whole base64 lines that follow (real or
        # JSON-escaped line breaks) are taken instead.
        r"(?<=--)---BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
        r"(?:(?:[^-]|-(?!----)){0,16384}+-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
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
        r"(?<=:/)/(?=[^\s:/@?#\"'<>\[\]]{0,256}+:(?P<url_password_v>[^\s/@?#\"'<>]{1,256}+)@)",
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

# Rules that recognise a credential by its own shape, whatever surrounds it
# (see _Shapes).
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
# Identifiers made of words joined by "_" ("created_at", "DEFAULT_API_KEY")
# are field or constant names even when quoted; random strings have no "_".
_SNAKE_NAME: Final = re.compile(r"[a-z]+(?:_[a-z]+)+|[A-Z]+(?:_[A-Z]+)+")
# CamelCase words ("SecretStr", "sessionData") are type names, but only where
# a type can stand: an unquoted value after ":" (password: SecretStr). Random
# letters often fall into the same case pattern ("UtyvjqNnnpXzgl"), so every
# word must also look like one: two letters or more, a vowel unless it is a
# short abbreviation ("Str", "Msg"), and no four consonants in a row.
_CAMEL_NAME: Final = re.compile(r"[a-z]+(?:[A-Z][a-z]+)+|[A-Z][a-z]+(?:[A-Z][a-z]+)*")
_WORD: Final = re.compile(r"[A-Z]?[a-z]+|[A-Z]+")
_VOWELS: Final = frozenset("aeiouyAEIOUY")
_CONSONANT_RUN: Final = re.compile(r"[b-df-hj-np-tv-xzB-DF-HJ-NP-TV-XZ]{4}")
# "*_key" names that are not secrets: public halves and database/cache keys.
_NOT_SECRET_NAME: Final = re.compile(
    r"(?:public|pub|primary|foreign|sort|partition|cache|idempotency|routing|lookup|"
    r"group|index|unique|natural|composite|surrogate|hash|dedupe|dedup|row|range)[_-]?key\Z",
    re.IGNORECASE,
)
_DIGIT_ALPHA_SWITCH: Final = re.compile(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")
_PROSE: Final = re.compile(r"[A-Za-z][A-Za-z'\u2019,.!?:-]*(?:\s+[A-Za-z][A-Za-z'\u2019,.!?:-]*)+")
_AWS_SECRET_NAME: Final = re.compile(r"(?:aws)?secretaccesskey", re.IGNORECASE)
_AWS_SECRET_VALUE: Final = re.compile(r"[A-Za-z0-9/+]{40}")
_NAME_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_SCHEMES: Final = frozenset({"bearer", "basic", "token", "bot"})
_MIN_SECRET_LEN: Final = 6
_LONG_VALUE: Final = 256
_YAML_WINDOW: Final = 256
_EARLIER_MARKER: Final = re.compile(r"\[REDACTED:[a-z_]+\]")


def _is_camel_name(value: str) -> bool:
    """Whether a value reads as a CamelCase type name rather than random letters."""
    return bool(_CAMEL_NAME.fullmatch(value)) and all(
        len(word) >= 2
        and (len(word) <= 3 or not _VOWELS.isdisjoint(word))
        and not _CONSONANT_RUN.search(word)
        for word in _WORD.findall(value)
    )


def _looks_random(value: str) -> bool:
    """Whether an identifier-shaped value is really a random string."""
    if value.isdigit() or not any(c.isdigit() for c in value):
        return False
    switches = len(_DIGIT_ALPHA_SWITCH.findall(value))
    return switches >= 3 or (len(value) >= 16 and "_" not in value)


def _is_secret_value(value: str, *, literal: bool, type_position: bool = False) -> bool:
    """Whether an assignment value should be treated as a credential.

    ``literal`` says the value is data (quoted, env file, CLI flag); otherwise
    it may be source code, where ``token = tokenizer`` names a variable.
    ``type_position`` says it may be a type annotation (``password: SecretStr``).
    """
    # Judge what earlier redaction left behind, so redacting is idempotent.
    value = _EARLIER_MARKER.sub("", value)
    if len(value) < _MIN_SECRET_LEN or value.isspace():
        return False
    if len(value) > _LONG_VALUE:
        # A long literal under a secret name is a credential (session tokens,
        # certificates); checking it cheaply also keeps long lines linear.
        return not _PROSE.fullmatch(value.strip())
    if _CODE.fullmatch(value) or _SNAKE_NAME.fullmatch(value):
        return False  # calls, attribute chains (settings.SECRET_KEY), names
    if type_position and _is_camel_name(value):
        return False
    if _PLACEHOLDER.fullmatch(value) or _NUMERIC.fullmatch(value) or _PATH.fullmatch(value):
        return False
    if not literal and _IDENTIFIER.fullmatch(value) and not _looks_random(value):
        return False
    # A sentence under a secret-looking name is a message, not a credential.
    return not (" " in value and _PROSE.fullmatch(value.strip()))


class _Shapes:
    """Spans of the credentials in a text that have a shape of their own.

    The main scan finds every one of them, including those inside assignment,
    header and URL values (values are looked at, not consumed). Such a
    credential's own edit names it by its most specific rule and replaces
    exactly it: ``GITHUB_TOKEN=ghp_...`` becomes ``[REDACTED:github_token]``,
    ``"Bearer ghp_..."`` keeps "Bearer ", ``https://x:ghs_...@github.com``
    keeps the host. So the value edits stand back when a value holds one.
    """

    __slots__ = ("starts",)

    def __init__(self, starts: list[int]) -> None:
        self.starts = starts  # sorted: matches come in text order

    def within(self, start: int, end: int) -> bool:
        i = bisect_left(self.starts, start)
        return i < len(self.starts) and self.starts[i] < end


def _unquote(raw: str) -> tuple[int, int]:
    """Offsets of a matched value's content inside its quotes."""
    for quote in ('\\"', "\\'", '"', "'"):
        n = len(quote)
        if len(raw) >= 2 * n and raw.startswith(quote) and raw.endswith(quote):
            return n, len(raw) - n
    return 0, len(raw)


# An edit replaces text[start:end] with the marker of ``rule``.
_Edit = tuple[int, int, str]


def _edit_for(m: re.Match[str], shapes: _Shapes) -> _Edit | None:
    rule = m.lastgroup
    assert rule is not None
    if rule == "secret_assignment":
        return _assignment_edit(m, shapes)
    if rule == "authorization_header":
        return _authorization_edit(m, shapes)
    if rule == "slack_webhook":
        return (*m.span("slack_webhook_v"), rule)
    if rule == "url_password":
        start, end = m.span("url_password_v")
        if _PLACEHOLDER.fullmatch(m.string[start:end]) or shapes.within(start, end):
            return None
        return start, end, rule
    return _shape_start(m, rule), m.end(), rule


def _shape_start(m: re.Match[str], rule: str) -> int:
    return m.start() - _BACKSTEP.get(rule, 0)


def _authorization_edit(m: re.Match[str], shapes: _Shapes) -> _Edit | None:
    start, end = m.span("authorization_header_v")
    credential = m.string[start:end]
    has_scheme = m.group("authorization_header_scheme") is not None
    if (
        credential.lower() in _SCHEMES
        or len(credential) < _MIN_SECRET_LEN
        or _PLACEHOLDER.fullmatch(credential)
        # Credentials are never a plain word; a word here means prose
        # ("Authorization: Bearer tokens are...", "Authorization: required").
        or (credential.isalpha() and (not has_scheme or len(credential) < 20))
        or shapes.within(start, end)
    ):
        return None
    return start, end, "authorization_header"


def _assignment_edit(m: re.Match[str], shapes: _Shapes) -> _Edit | None:
    start, end = m.span("secret_assignment_v")
    raw = m.string[start:end]
    lo, hi = _unquote(raw)
    value = raw[lo:hi]
    name, name_start = _name_before(m)
    if _NOT_SECRET_NAME.search(name):
        return None
    value_start, value_end = start + lo, start + hi
    if not lo and len(value) >= _UNQUOTED_MAX:
        # The pattern stops looking after _UNQUOTED_MAX characters; never
        # leave the rest of a long value behind.
        tail = _UNQUOTED_TAIL.match(m.string, value_end)
        value_end = end = tail.end() if tail else value_end
        value = m.string[value_start:value_end]
    if _AWS_SECRET_VALUE.fullmatch(value) and _AWS_SECRET_NAME.search(
        name.replace("_", "").replace("-", "")
    ):
        return value_start, value_end, _AWS_SECRET_RULE
    literal = (
        bool(lo)
        or m.group("secret_assignment_cli") is not None
        # An UPPER_CASE name is an environment variable or a constant, whose
        # unquoted value is a literal string (env files, shell, compose).
        or (name.upper() == name and any(c.isalpha() for c in name))
        # A URL query parameter ("?password=...&") is data.
        or m.string[name_start - 1 : name_start] in ("?", "&")
        or _is_yaml_line(m.string, name_start, end)
    )
    type_position = not lo and m.group().startswith(":")
    if _is_secret_value(value, literal=literal, type_position=type_position) and not shapes.within(
        value_start, value_end
    ):
        return value_start, value_end, "secret_assignment"
    return None


def _is_yaml_line(text: str, name_start: int, value_end: int) -> bool:
    """``name: value`` alone on its line, as in YAML rather than in code.

    Code puts something around an annotation or object member
    (``token: string;``, ``f(token: str)``, ``{ token: token }``); a YAML
    mapping line has only indentation or a list dash before the name and
    nothing (or a comment) after the value.
    """
    # Only a short window either side is looked at, so that a huge one-line
    # payload with many assignments does not rescan the line for each.
    window = text[max(0, name_start - _YAML_WINDOW) : name_start]
    if "\n" not in window and name_start > _YAML_WINDOW:
        return False
    if window.rpartition("\n")[2].strip(" \t-"):
        return False
    rest = text[value_end : value_end + _YAML_WINDOW].partition("\n")[0].strip()
    return not rest or rest.startswith("#")


def _name_before(m: re.Match[str]) -> tuple[str, int]:
    """The assigned name and where it starts: before the separator, or the CLI flag."""
    if m.group("secret_assignment_cli") is not None:
        return m.group().split("=")[0].strip(), m.start()
    text = m.string
    end = m.start()
    while end and text[end - 1] in " \t":
        end -= 1
    if end and text[end - 1] in "\"'":
        end -= 2 if end > 1 and text[end - 2] == "\\" else 1
    start = end
    while start and text[start - 1] in _NAME_CHARS:
        start -= 1
    return text[start:end], start


def _redact(text: str, counts: dict[str, int]) -> str:
    matches = list(_SCANNER.finditer(text))
    if not matches:
        return text
    shapes = _Shapes([_shape_start(m, r) for m in matches if (r := m.lastgroup) in _SHAPE_RULES])
    edits: list[_Edit] = []
    value_edit_end = -1
    for m in matches:
        shape = m.lastgroup in _SHAPE_RULES
        if not shape and m.start() < value_edit_end:
            # Inside a value already being replaced ("token=token=..."): its
            # own value ends at the same delimiter, so its edit would be
            # dropped below anyway; skipping keeps long lines linear.
            continue
        edit = _edit_for(m, shapes)
        if edit:
            edits.append(edit)
            if not shape:
                value_edit_end = max(value_edit_end, edit[1])
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
