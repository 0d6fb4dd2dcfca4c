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
of a few characters that are rare in ordinary text
(``- _ . : = A G J S g k x y | ~``). The pattern is one alternative per entry
character, each led by that character as a literal: sre skips ahead to the
next entry character, compares a handful of literals to pick its alternative,
and the next character selects the rule with a cheap check (sre tests a
branch's leading literal or class before trying it). Only then do
lookbehinds confirm the full prefix. This means:

* assignments (``NAME=value``, ``"name": "value"``, ``--flag value``) and
  ``Authorization``/``Cookie`` headers enter on the separator, and a
  lookbehind checks the name before it, instead of entering on every letter
  that could start a name;
* a few credentials are entered a few characters in (a JWT at the ``J`` of
  ``eyJ``, ``sk-``/``sk_`` keys at the ``k``); ``_BACKSTEP`` says how far the
  replacement reaches back before the match;
* tokens whose prefix ends in ``_``, ``-`` or ``.`` (``npm_``, ``pypi-``,
  ``hvs.``, ...) share one table, ``_PREFIXED``: they enter on that separator,
  one lookbehind per prefix width checks the table, and Python picks the rule
  and checks the body's shape;
* assignment values are captured in lookaheads rather than consumed, so a
  value that is vetoed (it turned out to be code or a placeholder) is still
  scanned for other credentials; overlapping edits are resolved afterwards.

After the scan, a secret that was replaced once is also replaced where it
appears bare elsewhere in the same text (or payload).
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
_WORDS_ALONE: Final = (
    "token",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "passcode",
    "apikey",
    # Weak names: they often hold settings ("auth: oauth2", "credentials:
    # 'include'", "sig = inspect.signature(f)"), so their values must look
    # random (see _WEAK_NAMES).
    "auth",
    "credential",
    "credentials",
    "sig",
)
_WORDS_SUFFIX: Final = ("key", "pass", "pwd", "key_base")
_WORDS_CAMEL: Final = ("Token", "Secret", "Key", "Password", "Passwd", "Passphrase", "Pwd")
# One-word upper-case names ("PGPASSWORD", "AUTH_CLIENTSECRET"): environment
# variables glue words together; "KEY" alone is left out ("MONKEY", "HOTKEY").
_WORDS_UPPER: Final = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "APIKEY")
_WEAK_NAMES: Final = frozenset({"auth", "credential", "credentials", "sig"})

# Pieces of "<name><closing quote?><blanks?><separator>", looked at backwards.
_SEP: Final = "[=:]"
# A non-breaking space (pasted from a web page or a chat) is a blank too.
_BLANK: Final = "[ \t\u00a0\u202f]"
_QUOTE: Final = "[\"']"
_ESCAPED_QUOTE: Final = r"\\[\"']"
_SUBSCRIPT_END: Final = _QUOTE + r"\]"  # os.environ["NAME"] = ...
_MAX_BLANKS: Final = 6  # aligned assignments: "SECRET_KEY     = ..."


def _name_variants(
    alone: Iterable[str],
    suffix: Iterable[str] = (),
    camel: Iterable[str] = (),
    upper: Iterable[str] = (),
) -> list[tuple[str, int, str]]:
    """(regex, width, last two letters) for every spelling of a name's tail."""
    variants = [(f"{_ci(w)}(?<![A-Za-z0-9]{_ci(w)})", len(w), w[-2:]) for w in alone]
    variants += [(f"[_-]{_ci(w)}", len(w) + 1, w[-2:]) for w in suffix]
    variants += [(f"[a-z0-9]{w}", len(w) + 1, w[-2:]) for w in camel]
    variants += [(f"[A-Z0-9]{w}", len(w) + 1, w[-2:]) for w in upper]
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
        f"|(?<=\\]{_BLANK}{_SEP}){name_then(_SUBSCRIPT_END + _BLANK)}"
        f"|(?<={_BLANK}{{2}}{_SEP})(?:{blank_runs}))"
        # env["NAME"]=value
        f"|(?<=\\]{_SEP}){name_then(_SUBSCRIPT_END)}"
        ")"
    )


_SECRET_NAME_VARIANTS: Final = _name_variants(
    _WORDS_ALONE, _WORDS_SUFFIX, _WORDS_CAMEL, _WORDS_UPPER
)


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
    # A value may start with "-" (Python decides whether it is a flag).
    rf"|-{_UNQUOTED_REST}{{5,{_UNQUOTED_MAX - 1}}}+"
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


# Tokens recognised by a literal prefix that ends in "_", "-" or ".": the
# scanner enters on that separator and one lookbehind per prefix width checks
# the table; Python then picks the rule and checks the body's shape. Bodies
# come from the providers' documented formats (as collected by gitleaks,
# trufflehog and detect-secrets).
_PREFIXED: Final[dict[str, tuple[str, str]]] = {
    # package registries
    "npm_": ("npm_token", r"[A-Za-z0-9]{36}"),
    "pypi-": ("pypi_token", r"AgE[A-Za-z0-9_-]{50,}"),
    "rubygems_": ("rubygems_token", r"[a-z0-9]{48}"),
    "dckr_pat_": ("dockerhub_token", r"[A-Za-z0-9_-]{20,}"),
    # AI providers
    "hf_": ("huggingface_token", r"[A-Za-z]{30,40}"),
    "api_org_": ("huggingface_token", r"[A-Za-z]{30,40}"),
    "gsk_": ("groq_key", r"[A-Za-z0-9]{48,56}"),
    "r8_": ("replicate_token", r"[A-Za-z0-9]{30,40}"),
    "pplx-": ("perplexity_key", r"[A-Za-z0-9]{40,56}"),
    "xai-": ("xai_key", r"[A-Za-z0-9]{70,90}"),
    "nvapi-": ("nvidia_key", r"[A-Za-z0-9_-]{60,70}"),
    "tvly-": ("tavily_key", r"(?:dev-|prod-)?[A-Za-z0-9]{32}"),
    "pcsk_": ("pinecone_key", r"[A-Za-z0-9_]{40,}"),
    "lsv2_pt_": ("langsmith_key", r"[a-f0-9]{32}_[a-f0-9]{10}"),
    "lsv2_sk_": ("langsmith_key", r"[a-f0-9]{32}_[a-f0-9]{10}"),
    # chat and mail
    "SG.": ("sendgrid_key", r"[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{40,50}"),
    "key-": ("mailgun_key", r"[a-f0-9]{32}"),
    "xkeysib-": ("brevo_key", r"[a-f0-9]{64}-[A-Za-z0-9]{16}"),
    # payments
    "whsec_": ("stripe_webhook_secret", r"[A-Za-z0-9+/=]{24,}"),
    "sq0atp-": ("square_token", r"[A-Za-z0-9_-]{22,60}"),
    "sq0csp-": ("square_token", r"[A-Za-z0-9_-]{22,60}"),
    # infrastructure
    "dop_v1_": ("digitalocean_token", r"[a-f0-9]{64}"),
    "doo_v1_": ("digitalocean_token", r"[a-f0-9]{64}"),
    "dor_v1_": ("digitalocean_token", r"[a-f0-9]{64}"),
    "HRKU-": ("heroku_key", r"AA[A-Za-z0-9_-]{58}"),
    "vcp_": ("vercel_token", r"[A-Za-z0-9]{24,}"),
    "vci_": ("vercel_token", r"[A-Za-z0-9]{24,}"),
    "vca_": ("vercel_token", r"[A-Za-z0-9]{24,}"),
    "vcr_": ("vercel_token", r"[A-Za-z0-9]{24,}"),
    "vck_": ("vercel_token", r"[A-Za-z0-9]{24,}"),
    "nfp_": ("netlify_token", r"[A-Za-z0-9]{36,40}"),
    "sntryu_": ("sentry_token", r"[a-f0-9]{64}"),
    "sntrys_": ("sentry_token", r"[A-Za-z0-9+/=_]{60,}"),
    "glc_": ("grafana_token", r"[A-Za-z0-9+/]{32,400}={0,3}"),
    "glsa_": ("grafana_token", r"[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}"),
    "NRAK-": ("newrelic_key", r"[A-Z0-9]{26,27}"),
    "NRII-": ("newrelic_key", r"[A-Za-z0-9_-]{25,32}"),
    "NRIQ-": ("newrelic_key", r"[A-Za-z0-9_-]{25,32}"),
    "dp.pt.": ("doppler_token", r"[A-Za-z0-9]{40,44}"),
    "dp.st.": ("doppler_token", r"[A-Za-z0-9]{40,44}"),
    "dp.sa.": ("doppler_token", r"[A-Za-z0-9]{40,44}"),
    "dt0c01.": ("dynatrace_token", r"[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}"),
    "pul-": ("pulumi_token", r"[a-z0-9]{40}"),
    "PMAK-": ("postman_key", r"[a-f0-9]{24}-[a-f0-9]{34}|[A-Za-z0-9]{59}"),
    "shpat_": ("shopify_token", r"[a-fA-F0-9]{32}"),
    "shpca_": ("shopify_token", r"[a-fA-F0-9]{32}"),
    "shppa_": ("shopify_token", r"[a-fA-F0-9]{32}"),
    "shpss_": ("shopify_token", r"[a-fA-F0-9]{32}"),
    "lin_api_": ("linear_key", r"[A-Za-z0-9]{40}"),
    "ntn_": ("notion_token", r"[0-9]{11}[A-Za-z0-9]{35}"),
    "secret_": ("notion_token", r"[A-Za-z0-9]{43}"),
    "pscale_tkn_": ("planetscale_token", r"[A-Za-z0-9_=.-]{32,64}"),
    "pscale_pw_": ("planetscale_token", r"[A-Za-z0-9_=.-]{32,64}"),
    "sbp_": ("supabase_token", r"[a-z0-9]{40}"),
    "fo1_": ("flyio_token", r"[A-Za-z0-9_-]{43}"),
    "fm2_": ("flyio_token", r"[A-Za-z0-9+/]{100,}={0,3}"),
    "GOCSPX-": ("google_oauth_secret", r"[A-Za-z0-9_-]{28}"),
    "ya29.": ("google_oauth_token", r"[A-Za-z0-9_-]{30,}"),
    # HashiCorp Vault: service, batch and recovery tokens, and the legacy
    # "s." service token (exactly 24 characters, checked further below).
    "hvs.": ("vault_token", r"[A-Za-z0-9_-]{24,}"),
    "hvb.": ("vault_token", r"[A-Za-z0-9_-]{24,}"),
    "hvr.": ("vault_token", r"[A-Za-z0-9_-]{24,}"),
    "s.": ("vault_token", r"[A-Za-z0-9]{24}(?![.])"),
    "sgp_": ("sourcegraph_token", r"(?:local_|[a-fA-F0-9]{16}_)?[a-fA-F0-9]{40}"),
    "slk_": ("sourcegraph_token", r"[a-f0-9]{64}"),
    "ops_": ("onepassword_token", r"eyJ[A-Za-z0-9+/]{100,}={0,3}"),
    "s-s4t2ud-": ("intra42_secret", r"[a-f0-9]{64}"),
    "s-s4t2af-": ("intra42_secret", r"[a-f0-9]{64}"),
}
# Bodies that are letters only; every other body must hold a digit, which
# keeps words and identifiers out ("hf_download_repository...").
_LETTER_BODIES: Final = frozenset({"huggingface_token"})
_PREFIX_GROUPS: Final = {"_": "prefixed_u", "-": "prefixed_d", ".": "prefixed_p"}


def _prefix_lookbehind(entry: str) -> str:
    prefixes = [p for p in _PREFIXED if p.endswith(entry)]
    before = "".join(sorted({re.escape(p[-2]) for p in prefixes}))
    by_width: dict[int, list[str]] = {}
    for p in prefixes:
        by_width.setdefault(len(p) + 1, []).append(re.escape(p) + ".")
    # A two-character prefix ("s.") ends many words ("forms.Field"), so its
    # start is checked here rather than in Python.
    tables = "|".join(
        f"(?<={'|'.join(ps)})" + (f"(?<![.{_TOKEN_CHARS}]{ps[0]})" if width == 3 else "")
        for width, ps in sorted(by_width.items())
    )
    # The check consumed the body's first character.
    return f"(?<=[{before}]{re.escape(entry)}.)(?:{tables})"


_CLI_FLAG_CHARS: Final = "puatwP"

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
        # Short CLI flags that take a password or token ("mysql -pS3cret",
        # "docker login -p ...", "curl -u user:pass"); Python checks the
        # command (see _CLI_COMMANDS). "--user" is curl's long spelling.
        "cli_secret",
        "-",
        f"[{_CLI_FLAG_CHARS}-]",
        rf"(?:(?<=[ \t]--)user|(?<=[ \t]-[{_CLI_FLAG_CHARS}]))"
        r"(?P<cli_secret_s>[ \t]++|=)?"
        r"(?=(?P<cli_secret_v>(?:[^\s\"'`;&|)]|\"[^\"\n]{0,512}+\"|'[^'\n]{0,512}+'){1,1024}+))",
    ),
    ("prefixed_d", "-", "[A-Za-z0-9_-]", _prefix_lookbehind("-")),
    (
        "mailchimp_key",
        # <32 hex>-us<datacenter>: entered on the dash.
        "-",
        "u",
        r"(?<=[0-9a-f]{32}-u)(?<![A-Za-z0-9_-][0-9a-f]{32}-u)s[0-9]{1,2}" + _NO_TOKEN_AFTER,
    ),
    (
        "aws_access_key_id",
        "A",
        "[KSBC]",
        r"(?<=A[KSBC])(?<![A-Za-z0-9]A[KSBC])(?:(?<=[KSB])IA|(?<=C)CA)"
        r"[A-Z0-9]{16}(?![A-Za-z0-9])",
    ),
    (
        # ATBB (Bitbucket app passwords), ATCTT3 (Bitbucket access tokens),
        # ATATT3 (Atlassian API tokens): Python names the rule.
        "atlassian",
        "A",
        "T",
        f"{_token_start('AT')}(?:BB[A-Za-z0-9]{{32}}|[AC]TT3[A-Za-z0-9_=-]{{100,}})"
        f"{_NO_TOKEN_AFTER}",
    ),
    (
        "google_api_key",
        "A",
        "I",
        f"{_token_start('AI')}za[{_TOKEN_CHARS}]{{35}}{_NO_TOKEN_AFTER}",
    ),
    (
        "gitlab_runner_registration",
        "G",
        "R",
        f"{_token_start('GR')}1348941[{_TOKEN_CHARS}]{{20,}}",
    ),
    (
        "twilio_api_key",
        "S",
        "K",
        f"{_token_start('SK')}[0-9a-fA-F]{{32}}{_NO_TOKEN_AFTER}",
    ),
    (
        "aws_session_token",
        # STS session tokens all begin with the same serialised header.
        "J",
        "b",
        f"{_token_start('IQoJb')}3JpZ2lu[A-Za-z0-9/+=]{{100,}}",
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
        f"{_token_start('gl')}(?:pat|dt|rt|ptt|soat|cbt|ft|imt|agent|oas|ffct)-"
        f"[{_TOKEN_CHARS}]{{20,}}"
        r"(?:\.[A-Za-z0-9_-]+)*",
    ),
    (
        "slack_token",
        "x",
        "[oa]",
        f"{_token_start('x[oa]')}"
        r"(?:(?<=o)x[abposre]-[A-Za-z0-9-]{10,}|(?<=a)pp-\d-[A-Za-z0-9-]{10,})",
    ),
    (
        "slack_webhook",
        # Enters on the "k." of the host; the host and path prefix stay
        # readable, the team/channel/secret path is replaced.
        "k",
        ".",
        r"(?<=hooks\.slack\.)com/(?:services|workflows|triggers|apps)/"
        r"(?P<slack_webhook_v>[A-Za-z0-9_/-]{8,})",
    ),
    (
        "discord_webhook",
        # Enters on the "ks" of ".../api/webhooks/<id>/<token>"; only the
        # token is replaced.
        "k",
        "s",
        r"(?<=/api/webhooks)(?:(?<=discord\.com/api/webhooks)|(?<=discordapp\.com/api/webhooks))"
        r"/[0-9]{5,30}/(?P<discord_webhook_v>[A-Za-z0-9_-]{60,80})",
    ),
    (
        "stripe_key",
        # Secret and restricted keys only: pk_ keys are publishable.
        "k",
        "_",
        f"{_token_start('[sr]k_')}(?:live|test)_[A-Za-z0-9]{{10,}}{_NO_TOKEN_AFTER}",
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
        "aws_bedrock_key",
        # Bedrock API keys: "ABSK" + base64 of "BedrockAPIKey-...".
        "A",
        "B",
        f"{_token_start('AB')}SKQmVkcm9ja0FQSUtleS[A-Za-z0-9+/]{{40,}}={{0,2}}",
    ),
    (
        "facebook_token",
        # Page and user access tokens: "EAA" + a long random tail.
        "A",
        "A",
        # "EAAA" + 22-60 is a Square access token (Python names it).
        f"{_token_start('EAA')}(?:[MC][A-Za-z0-9]{{100,}}|A[A-Za-z0-9_=-]{{22,60}})"
        f"{_NO_TOKEN_AFTER}",
    ),
    (
        "facebook_app_token",
        # App access tokens: "<app id>|<secret>".
        "|",
        "[A-Za-z0-9_-]",
        r"(?<=[0-9]{15}\|.)(?<![0-9]{17}\|.)[A-Za-z0-9_-]{26,39}" + _NO_TOKEN_AFTER,
    ),
    (
        "nuget_key",
        "y",
        "2",
        f"{_token_start('oy2')}[a-z0-9]{{43}}{_NO_TOKEN_AFTER}",
    ),
    ("prefixed_u", "_", "[A-Za-z0-9_-]", _prefix_lookbehind("_")),
    ("prefixed_p", ".", "[A-Za-z0-9_-]", _prefix_lookbehind(".")),
    (
        "discord_bot_token",
        # <base64 user id>.<6>.<27+>: entered on the second dot, where one
        # lookbehind for the dot before it fails fast; Python checks the id.
        ".",
        "[A-Za-z0-9_-]",
        r"(?<=\.[A-Za-z0-9_-]{6}\..)[A-Za-z0-9_-]{26,37}" + _NO_TOKEN_AFTER,
    ),
    (
        "azure_ad_client_secret",
        "~",
        "[A-Za-z0-9_.~-]",
        r"(?<=[A-Za-z0-9_~.]{3}[0-9]Q~.)[A-Za-z0-9_~.-]{30,33}(?![A-Za-z0-9_~.-])",
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
        "telegram_bot_token",
        # <bot id>:<35>, usually "AA...": entered on the colon; Python checks
        # the id and that the secret mixes cases and digits.
        ":",
        "[A-Za-z0-9_-]",
        r"(?<=[0-9]{5}:.)[A-Za-z0-9_-]{34}" + _NO_TOKEN_AFTER,
    ),
    (
        "jwt",
        # The character after "eyJ" is any base64url character, so no
        # second-character check: the lookbehind on "eyJ" comes first. An
        # unsigned token ("alg": "none") ends with its second dot or without
        # it, header and claims only.
        "J",
        "",
        f"{_token_start('eyJ')}[{_TOKEN_CHARS}]{{8,}}"
        f"\\.eyJ[{_TOKEN_CHARS}]{{8,}}+(?:\\.[{_TOKEN_CHARS}]*+)?",
    ),
    (
        "authorization_header",
        "=:",
        "",
        # Cookie and Set-Cookie headers share this rule's name check; Python
        # tells them apart (see _cookie_edits).
        f"(?<={_SEP}){_follows_name(_name_variants(['authorization', 'cookie']))}"
        + r"[ \t]*+(?:\\?[\"'])?"
        # Any scheme word (Bearer, Basic, Token, Bot, SSWS, Api-Token, ...)
        # followed by blanks; the credential is what follows it.
        + r"(?:(?P<authorization_header_scheme>[A-Za-z][A-Za-z0-9._-]{0,30}+)[ \t]++)?"
        + r"(?=(?P<authorization_header_v>[^\s\"'`,;\\]++))",
    ),
    (
        # The value half of a name/value pair held apart ({"name":
        # "DB_PASSWORD", "value": "..."}, "- name: X\n  value: ...",
        # <add key="ApiKey" value="..."/>); Python checks the name half (see
        # _sibling_name). "value = ..." with a blank is code and not looked at.
        "sibling_value",
        "=:",
        "",
        r"(?<=[e\"'][:=])(?:(?<=[vV]alue[:=])|(?<=[vV]alue[\"'][:=])|(?<=[vV]alue\\[\"'][:=]))"
        + f"{_BLANK}*+(?=(?P<sibling_value_v>{_VALUE}))",
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
        + f"(?:(?<==)>|(?<=:)=)?{_BLANK}*+"
        + r")"
        + rf"(?=(?P<secret_assignment_v>{_VALUE}))",
    ),
)

# Rules that refine a secret_assignment match by the name and shape of its
# value (AWS secret keys have no prefix, only their name gives them away).
_AWS_SECRET_RULE: Final = "aws_secret_access_key"
_REFINED_RULES: Final = (
    _AWS_SECRET_RULE,
    "azure_storage_key",
    "azure_sas_signature",
    "twilio_auth_token",
)
# Scanner groups that are spellings of another rule.
_GROUP_RULE: Final = {
    "gitlab_runner_registration": "gitlab_token",
    "sibling_value": "secret_assignment",
    "facebook_app_token": "facebook_token",
}
_PREFIX_RULES: Final = tuple(dict.fromkeys(rule for rule, _ in _PREFIXED.values()))

RULE_NAMES: Final[tuple[str, ...]] = tuple(
    dict.fromkeys(
        [
            *(
                _GROUP_RULE.get(rule[0], rule[0])
                for rule in _RULES
                if rule[0] not in _PREFIX_GROUPS.values() and rule[0] != "atlassian"
            ),
            *_PREFIX_RULES,
            "bitbucket_token",
            "atlassian_token",
            "cookie",
            *_REFINED_RULES,
        ]
    )
)

_GROUP_NAME: Final = re.compile(r"\(\?P<(\w+)>")


def _build_scanner() -> tuple[re.Pattern[str], dict[str, tuple[str, str]]]:
    """The scanner, and for every rule group its (rule group, group suffix).

    The pattern is one alternative per entry character, each starting with
    that character as a literal: sre turns the set of those literals into its
    fast skip-ahead, and once one is found it compares a few literals to pick
    the entry's own rules, whose second-character checks come next. A rule
    entered on several characters appears once per entry; its groups get a
    suffix there because a group name may appear only once in a pattern.
    """
    by_entry: dict[str, list[tuple[str, str, str, str]]] = {}
    for name, entries, check, body in _RULES:
        for entry in entries:
            suffix = f"__{ord(entry):x}" if len(entries) > 1 else ""
            by_entry.setdefault(entry, []).append((name, suffix, check, body))
    groups: dict[str, tuple[str, str]] = {}
    alternatives = []
    for entry, rules in sorted(by_entry.items()):
        branches = []
        for name, suffix, check, body in rules:
            groups[name + suffix] = (name, suffix)
            if suffix:
                body = _GROUP_NAME.sub(rf"(?P<\g<1>{suffix}>", body)
            branches.append(f"{check}(?P<{name}{suffix}>{body})")
        alternatives.append(f"{re.escape(entry)}(?:{'|'.join(branches)})")
    return re.compile("|".join(alternatives)), groups


_SCANNER, _GROUPS = _build_scanner()


class _Hit:
    """A scanner match seen through its rule's own group names."""

    __slots__ = ("group", "m", "string", "suffix")

    def __init__(self, m: re.Match[str]) -> None:
        # Every branch of the scanner is a named group, so a match always has one.
        self.m = m
        self.string = m.string
        self.group, self.suffix = _GROUPS[m.lastgroup or ""]

    def start(self, name: str | None = None) -> int:
        return self.m.start() if name is None else self.m.start(name + self.suffix)

    def end(self) -> int:
        return self.m.end()

    def span(self, name: str) -> tuple[int, int]:
        return self.m.span(name + self.suffix)

    def text(self, name: str | None = None) -> str | None:
        """The text of a group (None if it took no part), or of the whole match."""
        return self.m.group() if name is None else self.m.group(name + self.suffix)


# How many characters before the match a credential starts (see docstring).
_BACKSTEP: Final = {
    "jwt": 2,
    "stripe_key": 1,
    "anthropic_key": 1,
    "openai_key": 1,
    "atlassian": 0,
    "gitlab_runner_registration": 0,
    "twilio_api_key": 0,
    "aws_session_token": 3,
    "nuget_key": 1,
    "azure_ad_client_secret": 5,
    "facebook_token": 1,
    "mailchimp_key": 32,
}

# Groups whose edit is not a credential found by its own shape.
_VALUE_GROUPS: Final = frozenset(
    {
        "url_password",
        "authorization_header",
        "secret_assignment",
        "sibling_value",
        "cli_secret",
    }
)

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
    | %\(?\w*\)?s?           # %s, %(password)s
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
_CODE: Final = re.compile(r"[A-Za-z_][\w.:]*[(\[].*|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
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
# A dotted env value that is data: some part holds a digit ("hunter2.Winter").
_ENV_LITERAL: Final = re.compile(r"[^()\[\]]*\d[^()\[\]]*")
_USER_PASS: Final = re.compile(r"[^:\s]{1,64}:[^:\s]{4,}")
# Words that make quoted text under a secret name a message, not a passphrase.
_MESSAGE_WORDS: Final = frozenset(
    (
        "a",
        "an",
        "the",
        "is",
        "are",
        "was",
        "be",
        "been",
        "must",
        "should",
        "not",
        "no",
        "your",
        "you",
        "please",
        "enter",
        "invalid",
        "incorrect",
        "wrong",
        "required",
        "missing",
        "too",
        "short",
        "long",
        "least",
        "characters",
        "match",
        "matches",
        "do",
        "does",
        "did",
        "has",
        "have",
        "for",
        "of",
        "to",
        "and",
        "or",
        "at",
        "in",
        "on",
        "with",
        "this",
        "that",
        "it",
        "new",
        "old",
        "reset",
        "forgot",
        "change",
        "expired",
        "confirm",
    )
)


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


def _is_secret_value(
    value: str,
    *,
    literal: bool,
    type_position: bool = False,
    env: bool = False,
    quoted: bool = False,
) -> bool:
    """Whether an assignment value should be treated as a credential.

    ``literal`` says the value is data (quoted, env file, CLI flag); otherwise
    it may be source code, where ``token = tokenizer`` names a variable.
    ``type_position`` says it may be a type annotation (``password: SecretStr``).
    ``env`` says it is a shell or env-file assignment (``DB_PASSWORD=x.y``),
    where a dotted value with digits is a password, not an attribute chain.
    ``quoted`` says it was quoted, where words may make a passphrase.
    """
    # Judge what earlier redaction left behind, so redacting is idempotent.
    value = _EARLIER_MARKER.sub("", value)
    if len(value) < _MIN_SECRET_LEN or value.isspace():
        return False
    if len(value) > _LONG_VALUE:
        # A long literal under a secret name is a credential (session tokens,
        # certificates); checking it cheaply also keeps long lines linear.
        return not _PROSE.fullmatch(value.strip())
    if _SNAKE_NAME.fullmatch(value) or (
        _CODE.fullmatch(value) and not ((env or quoted) and _ENV_LITERAL.fullmatch(value))
    ):
        return False  # calls, attribute chains (settings.SECRET_KEY), names
    if type_position and _is_camel_name(value):
        return False
    if _PLACEHOLDER.fullmatch(value) or _NUMERIC.fullmatch(value) or _is_path(value):
        return False
    if not literal and _IDENTIFIER.fullmatch(value) and not _looks_random(value):
        return False
    # A sentence under a secret-looking name is a message, not a credential;
    # quoted words that read as no sentence are a passphrase.
    if " " in value and _PROSE.fullmatch(value.strip()):
        return quoted and _is_passphrase(value)
    return True


def _is_path(value: str) -> bool:
    """A path or file name ("./id_rsa", "key.pem"), not a random string with a dot."""
    if not _PATH.fullmatch(value):
        return False
    return "/" in value or "\\" in value or not _looks_random(value.rpartition(".")[0])


def _is_passphrase(value: str) -> bool:
    words = value.split()
    return (
        2 <= len(words) <= 8
        and value[-1] not in ".!?:"
        and not any(w.lower().strip(",'") in _MESSAGE_WORDS for w in words)
    )


def _is_strong(value: str) -> bool:
    """A value under a weak name (``auth``, ``credentials``) must look random."""
    if _USER_PASS.fullmatch(value):
        return True
    return (
        any(c.isdigit() for c in value)
        and any(c.isalpha() for c in value)
        and (_looks_random(value) or not _IDENTIFIER.fullmatch(value))
        and len(value) >= 8
    )


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
        self.starts = sorted(starts)

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

_TOKEN_CHAR_SET: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
)
# Masked or made-up credentials ("ghp_xxxxxxxx...", "AKIAXXXXXXXXXXXXXXXX").
_MASK_RUN: Final = re.compile(r"([xX*#•])\1{3}")
_PREFIX_BODIES: Final = {
    prefix: (rule, re.compile(body + r"(?![A-Za-z0-9_-])"))
    for prefix, (rule, body) in _PREFIXED.items()
}
_PREFIX_LENGTHS: Final = sorted({len(p) for p in _PREFIXED}, reverse=True)
# A bare AWS secret key after its key id ("key AKIA... with secret wJalr...").
_AWS_SECRET_NEARBY: Final = re.compile(
    r"(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+]{0,39}[A-Z])(?=[A-Za-z0-9/+]{0,39}[a-z])"
    r"(?=[A-Za-z0-9/+]{0,39}[0-9])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
)
_AWS_SECRET_WINDOW: Final = 200
# A body of one to three distinct characters ("glc_1111...") is a stand-in.
_MIN_DISTINCT: Final = 3


_PEM_BODY: Final = re.compile(r"[A-Za-z0-9+/=]{16}")
_ALNUM_RUN: Final = re.compile(r"[A-Za-z0-9]+")


def _is_mixed(value: str) -> bool:
    return (
        any(c.isdigit() for c in value)
        and any(c.isupper() for c in value)
        and any(c.islower() for c in value)
    )


def _is_slack_body(body: str) -> bool:
    """Slack tokens are long and mix digits and letters ("xoxb-12345-abc" is not one)."""
    return len(body) >= 14 and any(c.isdigit() for c in body) and any(c.isalpha() for c in body)


def _is_masked(token: str) -> bool:
    body = re.split(r"[_.-]", token, maxsplit=1)[-1]
    if len(body) < _COPY_MIN:
        body = token
    longest = max(_ALNUM_RUN.findall(token), key=len, default="")
    return bool(
        _MASK_RUN.search(token)
        or _PLACEHOLDER.fullmatch(body)
        or len(set(longest)) <= _MIN_DISTINCT
        or body.lower().endswith("here")
    )


def _token_back(text: str, pos: int) -> int:
    """Where the run of token characters that ends at ``pos`` starts."""
    while pos and text[pos - 1] in _TOKEN_CHAR_SET:
        pos -= 1
    return pos


def _shape_edits(m: _Hit, group: str) -> list[_Edit]:
    """Edits for a credential recognised by its own shape (usually one)."""
    text = m.string
    if group in _PREFIX_GROUPS.values():
        edit = _prefixed_edit(m)
        return [edit] if edit else []
    rule = _GROUP_RULE.get(group, group)
    if group in ("slack_webhook", "discord_webhook"):
        return [(*m.span(f"{group}_v"), rule)]
    start, end = m.start() - _BACKSTEP.get(group, 0), m.end()
    if group == "facebook_token" and text.startswith("EAAA", start):
        rule = "square_token"
    if group == "atlassian":
        rule = "atlassian_token" if text.startswith("ATATT3", start) else "bitbucket_token"
    if group in ("discord_bot_token", "telegram_bot_token", "facebook_app_token"):
        head_end = m.start() - 7 if group == "discord_bot_token" else m.start()
        start = _token_back(text, head_end)
        head = text[start:head_end]
        if group == "facebook_app_token" and not (head.isdigit() and 15 <= len(head) <= 16):
            return []
        if group == "telegram_bot_token" and not (
            head.isdigit() and 8 <= len(head) <= 10 and _is_mixed(text[m.start() + 1 : end])
        ):
            return []
        if group == "discord_bot_token" and not (24 <= len(head) <= 26 and head[0] in "MNO"):
            return []
    token = text[start:end]
    if rule == "private_key":
        # A block needs a body: "BEGIN ... PRIVATE KEY-----\nanything\n-----END"
        # is documentation.
        body = token[token.find("-----", 5) + 5 :].partition("-----END")[0]
        return [(start, end, rule)] if _PEM_BODY.search(body) else []
    if _is_masked(token):
        return []
    if rule == "slack_token" and not _is_slack_body(token[5:]):
        return []
    if group == "twilio_api_key" and (token[2:].isdigit() or token[2:].isalpha()):
        return []
    edits = [(start, end, rule)]
    if rule == "aws_access_key_id":
        secret = _AWS_SECRET_NEARBY.search(text, end, end + _AWS_SECRET_WINDOW)
        if secret:
            edits.append((*secret.span(), _AWS_SECRET_RULE))
    return edits


def _prefixed_edit(m: _Hit) -> _Edit | None:
    text = m.string
    entry_end = m.start() + 1
    for n in _PREFIX_LENGTHS:
        start = entry_end - n
        found = _PREFIX_BODIES.get(text[max(start, 0) : entry_end]) if start >= 0 else None
        if found is None or (start and text[start - 1] in _TOKEN_CHAR_SET):
            continue
        rule, body = found
        bm = body.match(text, entry_end)
        if bm is None:
            return None
        value = bm.group()
        if rule not in _LETTER_BODIES and not any(c.isdigit() for c in value):
            return None
        if text[start:entry_end] == "s." and (value.isalpha() or value.lower() == value):
            return None  # legacy Vault tokens mix case and digits
        if _is_masked(value):
            return None
        return start, bm.end(), rule
    return None


def _value_edit(m: _Hit, group: str, shapes: _Shapes) -> _Edit | None:
    if group == "secret_assignment":
        return _assignment_edit(m, shapes)
    if group == "sibling_value":
        return _sibling_edit(m, shapes)
    if group == "authorization_header":
        return _authorization_edit(m, shapes)
    if group == "cli_secret":
        return _cli_edit(m, shapes)
    start, end = m.span("url_password_v")
    if _PLACEHOLDER.fullmatch(m.string[start:end]) or shapes.within(start, end):
        return None
    return start, end, group


def _authorization_edit(m: _Hit, shapes: _Shapes) -> _Edit | None:
    start, end = m.span("authorization_header_v")
    credential = m.string[start:end]
    scheme = m.text("authorization_header_scheme")
    if (
        credential.lower() in _SCHEMES
        or len(credential) < _MIN_SECRET_LEN
        # Shell expansions and templates stay whole: "Bearer $(gcloud auth
        # print-access-token)", "Bearer ${TOKEN}", "Bearer {{ token }}".
        or credential[0] in "$<{%"
        or _PLACEHOLDER.fullmatch(credential)
        # Credentials are never a plain word; a word here means prose
        # ("Authorization: Bearer tokens are...", "Authorization: required").
        or (credential.isalpha() and (scheme is None or len(credential) < 20))
        or (scheme is not None and scheme.lower() not in _SCHEMES and _PROSE_WORD.fullmatch(scheme))
        or shapes.within(start, end)
    ):
        return None
    return start, end, "authorization_header"


# A scheme that is an ordinary lower-case word starts prose, not a header
# ("Authorization: required for admins").
_PROSE_WORD: Final = re.compile(r"[a-z]+")

_COOKIE_PAIR: Final = re.compile(r"([^=;,\s]{1,128})=([^;,\s]*)")
_COOKIE_ATTRIBUTES: Final = frozenset(
    ("path", "domain", "expires", "max-age", "samesite", "secure", "httponly", "priority")
)


def _is_cookie_header(m: _Hit) -> bool:
    return (
        m.string[max(0, m.start() - 8) : m.start()]
        .rstrip(_HEADER_NAME_END)
        .lower()
        .endswith("cookie")
    )


_HEADER_NAME_END: Final = " \t\u00a0\u202f\"'\\"
_COOKIE_LINE: Final = re.compile(r"[ \t]*+([^\r\n\"'`\\]{1,4096}+)")


def _cookie_edits(m: _Hit, shapes: _Shapes) -> tuple[list[_Edit], int]:
    """Values of the cookies in a Cookie or Set-Cookie header (attributes kept),
    and where the header's line ends."""
    edits: list[_Edit] = []
    line = _COOKIE_LINE.match(m.string, m.end())
    if line is None:
        return edits, m.end()
    offset = line.start(1)
    for pair in _COOKIE_PAIR.finditer(line.group(1)):
        name, value = pair.groups()
        start, end = offset + pair.start(2), offset + pair.end(2)
        if (
            name.lower() in _COOKIE_ATTRIBUTES
            or len(value) < _MIN_SECRET_LEN
            or _PLACEHOLDER.fullmatch(value)
            or shapes.within(start, end)
        ):
            continue
        edits.append((start, end, "cookie"))
    return edits, line.end()


# Commands whose short flag takes a password or token: flag -> how the value
# is given ("attached": only "-pSECRET", since "mysql -p db" prompts; "any":
# attached, "=" or after a blank; "userpass": "user:password", the password
# is replaced). Commands marked "login" only in their login subcommand.
_CLI_COMMANDS: Final[dict[str, dict[str, str]]] = {
    **{
        command: {"p": "attached"}
        for command in (
            "mysql",
            "mysqldump",
            "mysqladmin",
            "mysqlimport",
            "mysqlshow",
            "mysqlcheck",
            "mariadb",
            "mariadb-dump",
        )
    },
    **{
        command: {"p": "login"}
        for command in ("docker", "podman", "nerdctl", "buildah", "skopeo", "helm", "oras", "crane")
    },
    **{command: {"p": "any"} for command in ("mongo", "mongosh", "mongodump", "mongorestore")},
    "sshpass": {"p": "any"},
    "redis-cli": {"a": "any"},
    "sqlcmd": {"P": "any"},
    "doctl": {"t": "any"},
    **{command: {"w": "any"} for command in ("ldapsearch", "ldapadd", "ldapmodify", "ldapdelete")},
    "curl": {"u": "userpass", "-user": "userpass"},
}
_COMMAND_BREAKS: Final = ("\n", ";", "|", "&", "`")
_CLI_WINDOW: Final = 300
_FLAG_SHAPE: Final = re.compile(r"-{1,2}[a-z][a-z0-9-]*(?:=.*)?")


def _is_flag_like(value: str) -> bool:
    """An unquoted value that is a flag or a negated name, not a secret."""
    return value.startswith("-") and (
        bool(_FLAG_SHAPE.fullmatch(value)) or bool(_IDENTIFIER.fullmatch(value[1:]))
    )


def _command_words(text: str, flag_start: int) -> list[str]:
    """The words of the shell command a flag belongs to, up to the flag."""
    window = text[max(0, flag_start - _CLI_WINDOW) : flag_start].replace("\\\n", "  ")
    start = max(window.rfind(c) for c in _COMMAND_BREAKS) + 1
    substitution = window.rfind("$(")
    if substitution != -1:
        start = max(start, substitution + 2)
    words = window[start:].split()
    while words and ("=" in words[0] or words[0] in ("sudo", "env", "command", "exec", "$")):
        words.pop(0)
    return [words[0].rpartition("/")[2], *words[1:]] if words else []


def _cli_edit(m: _Hit, shapes: _Shapes) -> _Edit | None:
    text = m.string
    flag_end = m.start("cli_secret_s" if m.text("cli_secret_s") else "cli_secret_v")
    flag = text[m.start() + 1 : flag_end]
    sep = m.text("cli_secret_s")
    words = _command_words(text, m.start())
    how = _CLI_COMMANDS.get(words[0], {}).get(flag) if words else None
    if how is None or (how == "attached" and sep) or (how == "login" and "login" not in words):
        return None
    if flag == "-user" and not sep:
        return None
    start, end = m.span("cli_secret_v")
    lo, hi = _unquote(text[start:end])
    start, end = start + lo, start + hi
    value = text[start:end]
    if how == "userpass":
        return _user_pass_edit(text, start, end, shapes)
    if (
        (not lo and _FLAG_SHAPE.fullmatch(value))
        or not _is_secret_value(value, literal=True)
        or shapes.within(start, end)
    ):
        return None
    return start, end, "cli_secret"


# Stand-ins people write for a password in a command line example.
_CLI_PLACEHOLDERS: Final = frozenset(
    ("pass", "password", "passwd", "test", "guest", "admin", "user", "secret", "pw", "pwd")
)


def _user_pass_edit(text: str, start: int, end: int, shapes: _Shapes) -> _Edit | None:
    """``user:password`` (either side may be quoted): the password, or an API
    key given as the user with an empty password (``-u "KEY:"``)."""
    value = text[start:end]
    if _PLACEHOLDER.fullmatch(value):
        return None
    user, colon, password = value.partition(":")
    if not colon:
        return None
    if not password.strip("\"'"):
        user = user.strip("\"'")
        if len(user) >= _COPY_MIN and _is_strong(user) and _is_secret_value(user, literal=True):
            user_start = text.index(user, start)
            return user_start, user_start + len(user), "cli_secret"
        return None
    start += len(user) + 1
    lo, hi = _unquote(password)
    start, end = start + lo, start + hi
    password = text[start:end]
    if (
        not password
        or _PLACEHOLDER.fullmatch(password)
        or _PLACEHOLDER.fullmatch(f"{user}:{password}")
        or password.lower() in _CLI_PLACEHOLDERS
        or re.fullmatch(r"\$\{?\w+\}?|\[[A-Za-z_ ]+\]", password)
        or shapes.within(start, end)
    ):
        return None
    return start, end, "cli_secret"


def _assignment_edit(m: _Hit, shapes: _Shapes) -> _Edit | None:
    start, end = m.span("secret_assignment_v")
    text = m.string
    raw = text[start:end]
    lo, hi = _unquote(raw)
    value = raw[lo:hi]
    if not lo and text[m.start() - 1 : m.start()] in _NAME_END_NOISE and _CODE.fullmatch(value):
        return None  # the common case in source code: "token = tokenizer.next()"
    name, name_start = _name_before(m)
    lower = name.lower()
    if _NOT_SECRET_NAME.search(name):
        return None
    cli = m.text("secret_assignment_cli") is not None
    value_start, value_end = start + lo, start + hi
    if not lo and len(value) >= _UNQUOTED_MAX:
        # The pattern stops looking after _UNQUOTED_MAX characters; never
        # leave the rest of a long value behind.
        tail = _UNQUOTED_TAIL.match(text, value_end)
        value_end = end = tail.end() if tail else value_end
        value = text[value_start:value_end]
    query = text[name_start - 1 : name_start] in ("?", "&")
    bare = lower.rpartition("-")[2].rpartition("_")[2]
    if lower == "sig":
        if not query:
            return None
    elif bare in _WEAK_NAMES and lower == bare and not _is_strong(value):
        return None
    refined = _refined_rule(lower, value, query=query)
    if refined:
        return value_start, value_end, refined
    # NAME=value in a shell or env file: no blank before "=".
    env = (
        name.upper() == name
        and any(c.isalpha() for c in name)
        and text[m.start() - 1 : m.start()] in _NAME_CHARS
        and text[m.start() : m.start() + 1] == "="
    )
    if not lo and _is_flag_like(value):
        return None
    literal = (
        bool(lo)
        or cli
        # An UPPER_CASE name is an environment variable or a constant, whose
        # unquoted value is a literal string (env files, shell, compose).
        or (name.upper() == name and any(c.isalpha() for c in name))
        # A URL query parameter ("?password=...&") is data.
        or query
        or _is_yaml_line(text, name_start, end)
    )
    type_position = not lo and (m.text() or "").startswith(":")
    # A number under a quoted secret name in JSON ({"pin_password": 123456}).
    json_number = (
        not lo
        and value.isdigit()
        and len(value) >= 4
        and (m.text() or "").startswith(":")
        and text[m.start() - 1 : m.start()] in "\"'"
    )
    if (
        json_number
        or _is_secret_value(
            value, literal=literal, type_position=type_position, env=env, quoted=bool(lo)
        )
    ) and not shapes.within(value_start, value_end):
        return value_start, value_end, "secret_assignment"
    return None


_AZURE_KEY_NAME: Final = re.compile(r"(?:account|storage|shared|primary|secondary)[_-]?key\Z")
_AZURE_KEY_VALUE: Final = re.compile(r"[A-Za-z0-9+/]{86}==")
_SESSION_TOKEN_NAME: Final = re.compile(r"(?:session|security)[_-]?token\Z")
_HEX32: Final = re.compile(r"[0-9a-f]{32}")


def _refined_rule(lower: str, value: str, *, query: bool) -> str | None:
    """A more specific rule for a secret named by its assignment."""
    squashed = lower.replace("_", "").replace("-", "")
    if _AWS_SECRET_VALUE.fullmatch(value) and _AWS_SECRET_NAME.search(squashed):
        return _AWS_SECRET_RULE
    if _AZURE_KEY_VALUE.fullmatch(value) and _AZURE_KEY_NAME.search(lower):
        return "azure_storage_key"
    if lower == "sig" and query and len(value) >= 20:
        return "azure_sas_signature"
    if (
        _SESSION_TOKEN_NAME.search(lower)
        and len(value) >= 100
        and ("aws" in lower or "amz" in lower)
    ):
        return "aws_session_token"
    if "twilio" in lower and _HEX32.fullmatch(value):
        return "twilio_auth_token"
    return None


# The name half of a name/value pair held apart, just before "value":
# {"name": "DB_PASSWORD", "value": ...}, - name: DB_PASSWORD\n  value: ...,
# <add key="ApiKey" value="..."/>.
_SIBLING: Final = re.compile(
    r"""(?P<key>name|key|Name|Key)["']?[ \t]*[:=][ \t]*["']?"""
    r"""(?P<name>[A-Za-z0-9_.-]{2,128})["']?[ \t]*,?[ \t]*(?:\r?\n[ \t]*)?$"""
)
_SIBLING_WINDOW: Final = 200
_SIBLING_BEFORE: Final = frozenset(" \t\r\n{<,;(\"'")


def _sibling_edit(m: _Hit, shapes: _Shapes) -> _Edit | None:
    text = m.string
    name_end = m.start()
    while text[name_end - 1 : name_end] in ("\\", '"', "'"):
        name_end -= 1
    name_start = name_end - 5
    if text[name_start - 1 : name_start] in _NAME_CHARS or _sibling_name(text, name_start) is None:
        return None
    start, end = m.span("sibling_value_v")
    lo, hi = _unquote(text[start:end])
    start, end = start + lo, start + hi
    value = text[start:end]
    if (not lo and _is_flag_like(value)) or not _is_secret_value(
        value, literal=True, quoted=bool(lo)
    ):
        return None
    return None if shapes.within(start, end) else (start, end, "secret_assignment")


def _sibling_name(text: str, value_name_start: int) -> str | None:
    end = value_name_start
    if end and text[end - 1] in "\"'":
        end -= 1
    window = text[max(0, end - _SIBLING_WINDOW) : end]
    if not any(word in window for word in ("name", "Name", "key", "Key")):
        return None
    sm = _SIBLING.search(window)
    if sm is None or window[sm.start() - 1 : sm.start()] not in ("", *_SIBLING_BEFORE):
        return None
    name = sm.group("name")
    return name if _is_secret_key(name) else None


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


_NAME_END_NOISE: Final = " \t\u00a0\u202f"


def _name_before(m: _Hit) -> tuple[str, int]:
    """The assigned name and where it starts: before the separator, or the CLI flag."""
    if m.text("secret_assignment_cli") is not None:
        return (m.text() or "").split("=")[0].strip(), m.start()
    text = m.string
    end = m.start()
    while end and text[end - 1] in _NAME_END_NOISE:
        end -= 1
    if end and text[end - 1] == "]":
        end -= 1
    if end and text[end - 1] in "\"'":
        end -= 2 if end > 1 and text[end - 2] == "\\" else 1
    start = end
    while start and text[start - 1] in _NAME_CHARS:
        start -= 1
    return text[start:end], start


_COPY_MIN: Final = 8


def _redact(text: str, counts: dict[str, int], found: dict[str, str] | None = None) -> str:
    matches = [_Hit(m) for m in _SCANNER.finditer(text)]
    if not matches:
        return text
    edits: list[_Edit] = []
    values: list[tuple[_Hit, str]] = []
    for m in matches:
        group = m.group
        if group in _VALUE_GROUPS:
            values.append((m, group))
        else:
            edits += _shape_edits(m, group)
    shapes = _Shapes([start for start, _, _ in edits])
    value_edit_end = -1
    for m, group in values:
        if m.start() < value_edit_end:
            # Inside a value already being replaced ("token=token=..."): its
            # own value ends at the same delimiter, so its edit would be
            # dropped below anyway; skipping keeps long lines linear.
            continue
        if group == "authorization_header" and _is_cookie_header(m):
            found_edits, line_end = _cookie_edits(m, shapes)
            # The whole line is the header's value: what else matched in it
            # was looked at as one of its cookies.
            value_edit_end = max(value_edit_end, line_end)
        else:
            edit = _value_edit(m, group, shapes)
            found_edits = [edit] if edit else []
        for edit in found_edits:
            edits.append(edit)
            value_edit_end = max(value_edit_end, edit[1])
    if not edits:
        return text
    # A secret pasted twice: its second, bare copy goes too.
    secrets = {text[s:e]: rule for s, e, rule in edits if e - s >= _COPY_MIN}
    for secret, rule in secrets.items():
        if found is not None:
            found[secret] = rule
        at = text.find(secret)
        while at != -1:
            edits.append((at, at + len(secret), rule))
            at = text.find(secret, at + len(secret))
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
    URLs keep user and host. A second copy of a redacted secret elsewhere in
    the text is replaced too. ``counts`` maps rule name to replacements made
    and is empty when the text comes back unchanged (the same object).
    """
    counts: dict[str, int] = {}
    return RedactionResult(_redact(text, counts), counts)


def redact_str(value: str) -> tuple[str, dict[str, int]]:
    """:func:`redact_text` as a ``(text, counts)`` pair."""
    result = redact_text(value)
    return result.text, result.counts


_SECRET_KEY_NAME: Final = re.compile(
    "(?:" + "|".join(regex for regex, _, _ in _SECRET_NAME_VARIANTS) + r")\Z"
)
_AUTHORIZATION_KEY: Final = re.compile(r"(?:proxy-)?authorization", re.IGNORECASE)
_HEADER_PREFIX: Final = "Authorization: "
_PAIR_KEYS: Final = frozenset({"auth", "credentials"})
_SIBLING_KEYS: Final = ("name", "key", "Name", "Key")


def _is_secret_key(key: object) -> bool:
    return (
        isinstance(key, str)
        and _SECRET_KEY_NAME.search(key) is not None
        and _NOT_SECRET_NAME.search(key) is None
    )


def _is_weak_key(key: str) -> bool:
    return key.lower().rpartition("-")[2].rpartition("_")[2] in _WEAK_NAMES


class _Walk:
    """One redact_payload call: counts, and the secrets found so far."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.found: dict[str, str] = {}

    def marker(self, value: object, rule: str = "secret_assignment") -> str:
        if isinstance(value, str) and len(value) >= _COPY_MIN:
            self.found[value] = rule
        self.counts[rule] = self.counts.get(rule, 0) + 1
        return _MARKER.format(rule)

    def string(self, value: str, key: object) -> str:
        if isinstance(key, str) and _AUTHORIZATION_KEY.fullmatch(key):
            # A headers dict: redact the value as the header line it stands
            # for, which keeps the scheme ("Bearer [REDACTED:...]"). Edits
            # never reach into the prefix, so slicing it off again is safe.
            return _redact(_HEADER_PREFIX + value, self.counts, self.found)[len(_HEADER_PREFIX) :]
        fired = len(self.counts), sum(self.counts.values())
        redacted = _redact(value, self.counts, self.found)
        if (
            fired == (len(self.counts), sum(self.counts.values()))
            and _is_secret_key(key)
            and _is_secret_value(value, literal=True, quoted=True)
            and not (isinstance(key, str) and _is_weak_key(key) and not _is_strong(value))
        ):
            return self.marker(value)
        return redacted

    def value(self, value: Any, key: object) -> Any:
        if isinstance(value, str):
            return self.string(value, key)
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int | float):
            # A number under a secret name is a PIN or a numeric password.
            if _is_secret_key(key) and not (isinstance(key, str) and _is_weak_key(key)):
                return self.marker(value)
            return value
        if isinstance(value, dict):
            return self.mapping(value)
        if isinstance(value, list | tuple):
            inherited = key if _is_secret_key(key) else None
            items = [self.value(v, inherited) for v in value]
            if (
                isinstance(key, str)
                and key.lower() in _PAIR_KEYS
                and len(value) == 2
                and isinstance(value[1], str)
                and items[1] == value[1]
                and value[1].strip()
                and not _PLACEHOLDER.fullmatch(value[1])
            ):
                # "auth": ["user", "password"]
                items[1] = self.marker(value[1])
            return tuple(items) if isinstance(value, tuple) else items
        return value

    def mapping(self, value: dict[Any, Any]) -> dict[Any, Any]:
        # {"name": "DB_PASSWORD", "value": ...}: the value is under that name.
        sibling = next(
            (v for k in _SIBLING_KEYS if isinstance(v := value.get(k), str) and _is_secret_key(v)),
            None,
        )
        out: dict[Any, Any] = {}
        for k, v in value.items():
            new_key = _redact(k, self.counts, self.found) if isinstance(k, str) else k
            while new_key in out:  # two keys redacted to the same marker
                new_key = f"{new_key}'"
            under = sibling if sibling is not None and k in ("value", "Value") else k
            out[new_key] = self.value(v, under)
        return out

    def copies(self, value: Any) -> Any:
        """Second pass: bare copies of secrets found elsewhere in the payload."""
        if isinstance(value, str):
            for secret, rule in self.found.items():
                n = value.count(secret)
                if n:
                    value = value.replace(secret, _MARKER.format(rule))
                    self.counts[rule] = self.counts.get(rule, 0) + n
            return value
        if isinstance(value, dict):
            return {self.copies(k): self.copies(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.copies(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.copies(v) for v in value)
        return value


def redact_payload(value: Any) -> tuple[Any, dict[str, int]]:
    """Redact every string in a JSON-like structure.

    Walks dicts, lists and tuples recursively and returns a new structure
    (the input is not modified) plus the merged rule counts. Dict keys are
    redacted like any string (a key that is itself a credential). A value
    under a key that names a secret (``{"api_key": "..."}``,
    ``{"pin_password": 123456}``) is replaced whole with
    ``[REDACTED:secret_assignment]``, unless a more specific rule already
    matched inside it; so is the value of a name/value pair held in sibling
    keys (``{"name": "DB_PASSWORD", "value": "..."}``) and the second item of
    a two-item list under ``auth``/``credentials``. A string under an
    ``Authorization`` key is treated as that header. Booleans, null and
    numbers under other keys are returned unchanged. A secret found once is
    also replaced where it appears bare elsewhere in the payload.
    """
    walk = _Walk()
    redacted = walk.value(value, None)
    if walk.found:
        redacted = walk.copies(redacted)
    return redacted, walk.counts
