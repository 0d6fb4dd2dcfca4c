"""Spec for sessions_app.redaction: what gets scrubbed from transcripts, and what does not.

Every fake credential below has a real shape but an obviously fake value, and is
assembled by concatenation so that this file does not trip secret scanners.
A positive case is a template in which "§" marks the secret: the input is the
template with the secret filled in, the expected output is the template with
the ``[REDACTED:<rule>]`` marker filled in. So each case also pins down what
must be kept around the secret (names, separators, quotes, schemes, hosts).
"""

from __future__ import annotations

import ast
import base64
import copy
import dataclasses
import random
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from sessions_app import redaction
from sessions_app.redaction import RULE_NAMES, RedactionResult, redact_payload, redact_text
from tests.sessions_app.redaction_corpus import positive_samples

# --- fake credentials -------------------------------------------------------

GH_CLASSIC = "ghp_" + "a1B2" * 9
GH_OAUTH = "gho_" + "Fake" + "c3D4" * 8
GH_USER = "ghu_" + "e5F6" * 9
GH_SERVER = "ghs_" + "g7H8" * 9
GH_REFRESH = "ghr_" + "i9J0" * 9
GH_FINE = "github_pat_" + "11FAKE0000" + "a1b2c3d4e5f6" + "_" + "Fake9" * 11
GITLAB = "glpat-" + "Fake" + "0123456789abcdef"
GITLAB_RUNNER = "glrt-" + "Fake" + "AbCdEf0123456789xyz"
AWS_KEY_ID = "AKIA" + "FAKE" + "0123456789AB"
AWS_TEMP_KEY_ID = "ASIA" + "FAKE" + "EXAMPLE12345"
AWS_SECRET = "Fake" + "0aB1/cD2+eF3" * 3
SLACK_BOT = "xoxb-" + "000000000000-" + "0000000000000-" + "Fake" * 6
SLACK_USER = "xoxp-" + "000000000000-" + "000000000000-" + "Fake1234" * 4
SLACK_APP = "xoxa-" + "2-" + "Fake0Fake0Fake0"
SLACK_REFRESH = "xoxr-" + "Fake" + "0123456789"
SLACK_SESSION = "xoxs-" + "Fake" + "9876543210"
SLACK_APP_LEVEL = "xapp-" + "1-" + "A0FAKE00000-" + "0000000000000-" + "fake" * 8
SLACK_HOOK_PATH = "T00000000/" + "B00000000/" + "Fake" * 6
STRIPE_LIVE = "sk_live_" + "Fake" * 6
STRIPE_TEST = "sk_test_" + "Fake0" * 5
STRIPE_RESTRICTED = "rk_live_" + "Fake1" * 5
STRIPE_PUBLISHABLE = "pk_live_" + "Fake2" * 5
OPENAI_LEGACY = "sk-" + "Fake1" * 9
OPENAI_PROJECT = "sk-proj-" + "Fake0_" * 8
OPENAI_SERVICE = "sk-svcacct-" + "Fake2" * 8
ANTHROPIC = "sk-ant-" + "api03-" + "Fake_" * 10 + "AA"
GOOGLE = "AIza" + "Fake" + "0123456789" * 3 + "a"
JWT = "eyJ" + "hbGciOiJIUzI1NiJ9" + "." + "eyJ" + "zdWIiOiJmYWtlIn0" + "." + "Fake" * 8
BASIC_CREDENTIALS = base64.b64encode(b"fake-user:fake-pass-123").decode()
OPAQUE_TOKEN = "fake" + "T0k3n" * 4


def pem(kind: str, body_lines: int = 3, newline: str = "\n") -> str:
    """A fake PEM private key block of the given kind ("RSA", "OPENSSH", ...)."""
    label = f"{kind} PRIVATE KEY".strip()
    body = newline.join("MIIFake" + "Key0" * 14 + str(i) for i in range(body_lines))
    return f"-----BEGIN {label}-----{newline}{body}{newline}-----END {label}-----"


PEM_RSA = pem("RSA")
PEM_OPENSSH = pem("OPENSSH")
PEM_PKCS8_ESCAPED = pem("", newline="\\n")
PEM_ENCRYPTED = pem("ENCRYPTED")
PGP_BLOCK = pem("PGP").replace("KEY-----", "KEY BLOCK-----")
PEM_TRUNCATED = pem("EC").split("\n-----END")[0]


# --- positive corpus --------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    template: str
    secret: str
    rule: str
    repeat: int = 1  # how many times "§" occurs

    @property
    def text(self) -> str:
        return self.template.replace("§", self.secret)

    @property
    def expected(self) -> str:
        return self.template.replace("§", f"[REDACTED:{self.rule}]")


def cases(rule: str, *items: tuple[str, str, str]) -> list[Case]:
    return [Case(id_, template, secret, rule) for id_, template, secret in items]


POSITIVE: dict[str, list[Case]] = {
    "private_key": cases(
        "private_key",
        ("rsa-block", "§", PEM_RSA),
        ("openssh-block-in-prose", "Here is the key:\n§\nUse it carefully.", PEM_OPENSSH),
        (
            "json-escaped-in-service-account",
            '{"type": "service_account", "private_key": "§\\n", "client_email": "x@y.iam"}',
            PEM_PKCS8_ESCAPED,
        ),
        ("encrypted-block", "cat key.pem\n§\n$ ", PEM_ENCRYPTED),
        ("pgp-block", "§", PGP_BLOCK),
        ("truncated-block-keeps-following-prose", "§\nThen I stopped.", PEM_TRUNCATED),
    ),
    "aws_access_key_id": cases(
        "aws_access_key_id",
        ("env-assignment", "AWS_ACCESS_KEY_ID=§", AWS_KEY_ID),
        ("credentials-file", "[default]\naws_access_key_id = §\nregion = eu-west-1", AWS_KEY_ID),
        (
            "sts-json",
            '{"Credentials": {"AccessKeyId": "§", "Expiration": "soon"}}',
            AWS_TEMP_KEY_ID,
        ),
        ("bare-in-prose", "The leaked key § belongs to the CI user.", AWS_KEY_ID),
        ("cli-flag", "aws configure set aws_access_key_id § --profile ci", AWS_TEMP_KEY_ID),
    ),
    "aws_secret_access_key": cases(
        "aws_secret_access_key",
        ("env-assignment", "AWS_SECRET_ACCESS_KEY=§", AWS_SECRET),
        ("credentials-file", "[default]\naws_secret_access_key = §\n", AWS_SECRET),
        ("export-quoted", 'export AWS_SECRET_ACCESS_KEY="§"', AWS_SECRET),
        ("sts-json", '{"AccessKeyId": "x", "SecretAccessKey": "§"}', AWS_SECRET),
        ("yaml", "aws:\n  secret_access_key: §\n", AWS_SECRET),
        ("cli-flag", "tool --aws-secret-access-key § --region eu", AWS_SECRET),
    ),
    "github_token": cases(
        "github_token",
        ("env-assignment", "GITHUB_TOKEN=§", GH_CLASSIC),
        ("export-quoted", 'export GH_TOKEN="§"', GH_OAUTH),
        (
            "as-url-password",
            "git clone https://x-access-token:§@github.com/org/repo.git",
            GH_SERVER,
        ),
        ("as-url-user", "git remote add origin https://§@github.com/org/repo.git", GH_USER),
        ("fine-grained-in-json", '{"token": "§"}', GH_FINE),
        ("authorization-token-scheme", "Authorization: token §", GH_REFRESH),
        ("bare-in-prose", "I used § to push.", GH_CLASSIC),
    ),
    "gitlab_token": cases(
        "gitlab_token",
        ("env-assignment", "GITLAB_TOKEN=§", GITLAB),
        (
            "private-token-header",
            "curl -H 'PRIVATE-TOKEN: §' https://gitlab.example.com/api",
            GITLAB,
        ),
        ("as-url-password", "https://oauth2:§@gitlab.com/group/project.git", GITLAB),
        ("runner-token-in-yaml", "runners:\n  token: §\n", GITLAB_RUNNER),
        ("bare-in-prose", "rotate § today", GITLAB),
    ),
    "slack_token": cases(
        "slack_token",
        ("bot-token-env", "SLACK_BOT_TOKEN=§", SLACK_BOT),
        ("user-token-json", '{"ok": true, "access_token": "§"}', SLACK_USER),
        ("app-token-bare", "token §", SLACK_APP),
        ("refresh-token-bare", "refresh with § now", SLACK_REFRESH),
        ("session-token-bare", "cookie d=§;", SLACK_SESSION),
        ("app-level-token", "SLACK_APP_TOKEN=§", SLACK_APP_LEVEL),
        ("bearer-header", "Authorization: Bearer §", SLACK_BOT),
    ),
    "slack_webhook": cases(
        "slack_webhook",
        ("env-assignment", "SLACK_WEBHOOK_URL=https://hooks.slack.com/services/§", SLACK_HOOK_PATH),
        (
            "curl",
            'curl -X POST -d \'{"text": "hi"}\' https://hooks.slack.com/services/§',
            SLACK_HOOK_PATH,
        ),
        ("json", '{"webhook": "https://hooks.slack.com/services/§"}', SLACK_HOOK_PATH),
        ("workflow", "https://hooks.slack.com/workflows/§", SLACK_HOOK_PATH),
        ("trigger-in-prose", "POST to hooks.slack.com/triggers/§ when done", SLACK_HOOK_PATH),
    ),
    "stripe_key": cases(
        "stripe_key",
        ("live-secret-env", "STRIPE_SECRET_KEY=§", STRIPE_LIVE),
        ("test-secret-python", 'stripe.api_key = "§"', STRIPE_TEST),
        ("restricted-bare", "restricted key: §", STRIPE_RESTRICTED),
        ("cli-flag", "stripe listen --api-key §", STRIPE_LIVE),
    ),
    "openai_key": cases(
        "openai_key",
        ("legacy-env", "OPENAI_API_KEY=§", OPENAI_LEGACY),
        ("project-json", '{"openai": {"apiKey": "§"}}', OPENAI_PROJECT),
        ("python-assignment", 'openai.api_key = "§"', OPENAI_PROJECT),
        ("service-account-bare", "the key § was revoked", OPENAI_SERVICE),
        ("bearer-header", "-H 'Authorization: Bearer §'", OPENAI_PROJECT),
    ),
    "anthropic_key": cases(
        "anthropic_key",
        ("env-assignment", "ANTHROPIC_API_KEY=§", ANTHROPIC),
        ("header-json", '{"x-api-key": "§", "anthropic-version": "2023-06-01"}', ANTHROPIC),
        ("curl-header", 'curl -H "x-api-key: §" https://api.anthropic.com/v1/messages', ANTHROPIC),
        ("python-kwarg", 'client = Anthropic(api_key="§")', ANTHROPIC),
        ("bare-in-prose", "Key § was pasted by mistake.", ANTHROPIC),
    ),
    "google_api_key": cases(
        "google_api_key",
        ("env-assignment", "GOOGLE_API_KEY=§", GOOGLE),
        ("js-camel-case", 'const apiKey = "§";', GOOGLE),
        ("url-query", "https://maps.googleapis.com/maps/api/geocode/json?key=§&address=x", GOOGLE),
        ("yaml", "maps:\n  api_key: §\n", GOOGLE),
        ("bare-in-prose", "found § in the bundle", GOOGLE),
    ),
    "jwt": cases(
        "jwt",
        ("bare", "decoded §", JWT),
        ("bearer-header", "Authorization: Bearer §", JWT),
        ("cookie", "Cookie: session=§; Path=/", JWT),
        ("id-token-json", '{"id_token": "§", "expires_in": 3600}', JWT),
        ("url-query", "https://app.example.com/callback?access_token=§&state=xyz", JWT),
    ),
    "authorization_header": cases(
        "authorization_header",
        ("bearer", "Authorization: Bearer §", OPAQUE_TOKEN),
        ("basic", "Authorization: Basic §", BASIC_CREDENTIALS),
        (
            "lowercase-curl",
            "curl -H 'authorization: bearer §' https://api.example.com",
            OPAQUE_TOKEN,
        ),
        ("json-header", '{"headers": {"Authorization": "Bearer §"}}', OPAQUE_TOKEN),
        ("proxy-authorization", "Proxy-Authorization: Basic §", BASIC_CREDENTIALS),
        ("without-scheme", "Authorization: §", OPAQUE_TOKEN),
    ),
    "url_password": cases(
        "url_password",
        ("pg-database-url", "DATABASE_URL=postgres://app:§@db.internal:5432/app", "Fak3Pa55w0rd"),
        ("mysql", "mysql://root:§@127.0.0.1:3306/shop", "n0t-a-real-pw"),
        ("redis-empty-user", "redis://:§@localhost:6379/0", "fakeRedisPw9"),
        ("amqp", "amqp://guest:§@rabbit:5672//", "F4kePw"),
        ("https-basic", "see https://deploy:§@ci.example.com/job/42", "fake%40pass1"),
        ("mongodb-srv", "mongodb+srv://svc:§@cluster0.example.net/db", "Fake.Pass-77"),
    ),
    "secret_assignment": cases(
        "secret_assignment",
        ("env-api-key", "API_KEY=§", "abc123xyz789"),
        ("export-password", 'export DB_PASSWORD="§"', "Fak3-Pa55word!"),
        ("env-passwd", "PASSWD=§", "fakepass99"),
        ("env-client-secret-literal-word", "CLIENT_SECRET=§", "supersecretvalue"),
        ("json-api-key", '{"api_key": "§", "max_tokens": 4000}', "abc123xyz789"),
        ("json-client-secret", '{"client_secret": "§"}', "Fake0Client0Secret0"),
        ("json-escaped-in-json", '{"input": "{\\"api_key\\": \\"§\\"}"}', "abc123xyz789"),
        ("yaml-password", "database:\n  password: §\n  user: app", "S3cr3t!Fake"),
        ("yaml-quoted-passphrase", 'passphrase: "§"', "fake horse 42 battery"),
        ("cli-password-space", "mysql --user app --password § shop", "Fake-Pw-123"),
        ("cli-api-key-equals", "tool --api-key=§ run", "abc123def456"),
        ("cli-token-equals", "deploy --token=§", "zz9Fake9zz9Fake"),
        ("python-constant", "SECRET_KEY = '§'", "django-insecure-f4ke0-k3y"),
        ("js-camel-case", "const config = { apiKey: '§' };", "fAkE-123-kEy"),
        ("ruby-hash-rocket", "{ 'secret' => '§' }", "Fake!Secret#1"),
        ("private-key-name", "PRIVATE_KEY=§", "Zm9vYmFyZmFrZQ=="),
        ("access-key-name-random-identifier", "access_key = §", "a8f5f167f44f4964e6c998dee827110c"),
        ("aligned-assignment", "SECRET_KEY     = §", "fake-9f8e7d6c5b4a"),
        ("url-query-token", "GET /export?token=§&format=csv", "Fake123Token456"),
        ("url-query-password", "grant_type=password&username=x&password=§&scope=a", "Fake123pw"),
        ("yaml-identifier-like-password", "db:\n  password: §\n", "hunter22"),
        ("yaml-list-item-with-comment", "- token: § # ci only", "abc123xyz9"),
        ("k8s-secret-base64", "data:\n  password: §\n", "cGFzc3dvcmQxMjM="),
        # Random letters can look like CamelCase words; only a type can be one.
        ("env-random-letters", "DB_PASS=§", "UtyvjqNnnpXzglBbRoRm"),
        ("json-random-letters", '{"client_secret": "§"}', "akeZxtlqpu"),
    ),
}

ALL_POSITIVE = [case for group in POSITIVE.values() for case in group]


def check_redacted(case: Case) -> None:
    result = redact_text(case.text)

    assert case.secret not in result.text
    assert result.text == case.expected
    assert result.counts == {case.rule: case.repeat}


# One test per rule, so a failure names the rule and the form it failed on.


@pytest.mark.parametrize("case", POSITIVE["private_key"], ids=lambda c: c.id)
def test_it_redacts_whole_pem_private_key_blocks(case: Case) -> None:
    check_redacted(case)


@pytest.mark.parametrize("case", POSITIVE["aws_access_key_id"], ids=lambda c: c.id)
def test_it_redacts_aws_access_key_ids(case: Case) -> None:
    check_redacted(case)


@pytest.mark.parametrize("case", POSITIVE["aws_secret_access_key"], ids=lambda c: c.id)
def test_it_redacts_aws_secret_keys_by_their_name(case: Case) -> None:
    check_redacted(case)


@pytest.mark.parametrize("case", POSITIVE["github_token"], ids=lambda c: c.id)
def test_it_redacts_github_tokens(case: Case) -> None:
    check_redacted(case)


@pytest.mark.parametrize("case", POSITIVE["gitlab_token"], ids=lambda c: c.id)
def test_it_redacts_gitlab_tokens(case: Case) -> None:
    check_redacted(case)


@pytest.mark.parametrize("case", POSITIVE["slack_token"], ids=lambda c: c.id)
def test_it_redacts_slack_tokens(case: Case) -> None:
    check_redacted(case)


@pytest.mark.parametrize("case", POSITIVE["slack_webhook"], ids=lambda c: c.id)
def test_it_redacts_slack_webhook_paths_and_keeps_the_host(case: Case) -> None:
    check_redacted(case)


@pytest.mark.parametrize("case", POSITIVE["stripe_key"], ids=lambda c: c.id)
def test_it_redacts_stripe_keys(case: Case) -> None:
    check_redacted(case)


@pytest.mark.parametrize("case", POSITIVE["openai_key"], ids=lambda c: c.id)
def test_it_redacts_openai_keys(case: Case) -> None:
    check_redacted(case)


@pytest.mark.parametrize("case", POSITIVE["anthropic_key"], ids=lambda c: c.id)
def test_it_redacts_anthropic_keys(case: Case) -> None:
    check_redacted(case)


@pytest.mark.parametrize("case", POSITIVE["google_api_key"], ids=lambda c: c.id)
def test_it_redacts_google_api_keys(case: Case) -> None:
    check_redacted(case)


@pytest.mark.parametrize("case", POSITIVE["jwt"], ids=lambda c: c.id)
def test_it_redacts_jwts(case: Case) -> None:
    check_redacted(case)


@pytest.mark.parametrize("case", POSITIVE["authorization_header"], ids=lambda c: c.id)
def test_it_redacts_authorization_credentials_and_keeps_the_scheme(case: Case) -> None:
    check_redacted(case)


@pytest.mark.parametrize("case", POSITIVE["url_password"], ids=lambda c: c.id)
def test_it_redacts_url_passwords_and_keeps_user_and_host(case: Case) -> None:
    check_redacted(case)


@pytest.mark.parametrize("case", POSITIVE["secret_assignment"], ids=lambda c: c.id)
def test_it_redacts_values_assigned_to_secret_names(case: Case) -> None:
    check_redacted(case)


def test_every_rule_has_at_least_five_positive_samples_here_or_in_the_corpus() -> None:
    marker = re.compile(r"\[REDACTED:([a-z0-9_]+)\]")
    corpus = Counter(
        rule for s in positive_samples() for rule in marker.findall(redact_text(s.text).text)
    )
    samples = {rule: len(POSITIVE.get(rule, ())) + corpus[rule] for rule in RULE_NAMES}

    assert {rule: n for rule, n in samples.items() if n < 5} == {}


@pytest.mark.parametrize("case", ALL_POSITIVE, ids=lambda c: f"{c.rule}-{c.id}")
def test_redacting_twice_changes_nothing_more(case: Case) -> None:
    once = redact_text(case.text)
    twice = redact_text(once.text)

    assert twice.text == once.text
    assert twice.counts == {}


# --- specific behaviours ----------------------------------------------------


def test_it_redacts_github_token_in_env_assignment() -> None:
    result = redact_text(f"GITHUB_TOKEN={GH_CLASSIC}")

    assert result == RedactionResult("GITHUB_TOKEN=[REDACTED:github_token]", {"github_token": 1})


def test_an_assignment_is_named_after_the_most_specific_rule_matching_its_value() -> None:
    assert redact_text(f"API_KEY={STRIPE_LIVE}").text == "API_KEY=[REDACTED:stripe_key]"
    assert redact_text(f"API_KEY={GH_CLASSIC}").text == "API_KEY=[REDACTED:github_token]"
    assert redact_text("API_KEY=abc123xyz789").text == "API_KEY=[REDACTED:secret_assignment]"


def test_an_assignment_keeps_its_name_separator_and_quotes() -> None:
    text = 'export  MY_APP_TOKEN="abc123xyz789" # rotated'

    assert redact_text(text).text == 'export  MY_APP_TOKEN="[REDACTED:secret_assignment]" # rotated'


def test_it_counts_every_replacement_per_rule() -> None:
    text = "\n".join(
        [
            f"GITHUB_TOKEN={GH_CLASSIC}",
            f"also pushed with {GH_USER}",
            f"AWS_ACCESS_KEY_ID={AWS_KEY_ID}",
            "DB_PASSWORD=Fake-Pw-123",
            "nothing here",
        ]
    )

    result = redact_text(text)

    assert result.counts == {"github_token": 2, "aws_access_key_id": 1, "secret_assignment": 1}
    assert result.text.count("[REDACTED:") == 4


def test_a_secret_in_a_vetoed_assignment_value_is_still_found() -> None:
    # The assignment itself is code (a call), but the argument is a real token.
    text = f"token = login('{GH_CLASSIC}')"

    assert redact_text(text).text == "token = login('[REDACTED:github_token]')"


def test_a_url_with_a_token_as_user_and_a_password_redacts_both() -> None:
    text = f"https://{GH_CLASSIC}:x-oauth-basic1@github.com/org/repo"

    result = redact_text(text)

    assert result.text == (
        "https://[REDACTED:github_token]:[REDACTED:url_password]@github.com/org/repo"
    )
    assert result.counts == {"github_token": 1, "url_password": 1}


def test_a_jwt_at_the_very_start_is_replaced_from_its_first_character() -> None:
    assert redact_text(JWT).text == "[REDACTED:jwt]"
    assert redact_text(STRIPE_LIVE).text == "[REDACTED:stripe_key]"


def test_a_long_unquoted_value_is_redacted_to_its_end() -> None:
    session_token = "IQoJb3JpZ2luX2Vj" + "Fake0Aa/+" * 300 + "=="

    result = redact_text(f"AWS_SESSION_TOKEN={session_token} next")

    assert result.text == "AWS_SESSION_TOKEN=[REDACTED:aws_session_token] next"


def test_an_equals_sign_inside_a_value_does_not_cut_it_short() -> None:
    assert redact_text("SECRET=abc=def1 x").text == "SECRET=[REDACTED:secret_assignment] x"


@pytest.mark.parametrize(
    "text",
    [
        "token=" * 50_000,
        "token:" * 50_000,
        '"token": "' + "a" * 300_000,
        "-----BEGIN RSA PRIVATE KEY-----\n" * 10_000,
        "Authorization: Bearer " * 15_000,
    ],
    ids=[
        "repeated-assignments",
        "repeated-colons",
        "unterminated-quote",
        "begin-without-end",
        "headers",
    ],
)
def test_long_lines_full_of_candidates_stay_linear(text: str) -> None:
    # Quadratic behaviour took minutes on these; linear takes well under a second.
    started = time.perf_counter()

    redact_text(text)

    assert time.perf_counter() - started < 10


def test_text_without_secrets_comes_back_as_the_same_object_with_empty_counts() -> None:
    text = "plain text with token_count=12 and max_tokens: 4000"

    result = redact_text(text)

    assert result.text is text
    assert result.counts == {}


def test_the_result_is_immutable() -> None:
    result = redact_text("x")

    with pytest.raises(dataclasses.FrozenInstanceError):
        result.text = "y"  # type: ignore[misc]


def test_empty_text_is_fine() -> None:
    assert redact_text("") == RedactionResult("", {})


def test_rule_names_are_unique_and_cover_every_marker_the_module_can_emit() -> None:
    emitted = {case.rule for case in ALL_POSITIVE} | {
        rule for s in positive_samples() for rule in s.rules
    }

    assert isinstance(RULE_NAMES, tuple)
    assert len(set(RULE_NAMES)) == len(RULE_NAMES)
    assert emitted == set(RULE_NAMES)


def test_the_module_does_not_import_django() -> None:
    source = Path(redaction.__file__).read_text()
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (
            node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")]
        )
    }

    assert imported <= {"__future__", "re", "bisect", "collections", "dataclasses", "typing"}


# --- negative corpus --------------------------------------------------------

_rng = random.Random(1234)
RANDOM_PNG_BASE64 = base64.b64encode(b"\x89PNG\r\n\x1a\n" + _rng.randbytes(6000)).decode()

NEGATIVE: dict[str, str] = {
    "git-sha-40-hex": "commit 3f786850e387550fdab836ed7e6dc881de23001b\nAuthor: Dev <dev@example.com>",
    "short-shas": "HEAD is now at a1b2c3d Fix flaky test\nMerge: 1a2b3c4 5d6e7f8",
    "sha-in-github-url": "https://github.com/org/repo/commit/3f786850e387550fdab836ed7e6dc881de23001b",
    "uuids": "request_id=123e4567-e89b-12d3-a456-426614174000 session=9f1c2d3e-0000-4000-8000-00000000abcd",
    "sha256-digest": "Digest: sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "sha256sum-output": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  dist/app.tar.gz",
    "base64-image-data-uri": f'{{"type": "image", "source": "data:image/png;base64,{RANDOM_PNG_BASE64}"}}',
    "unix-paths": "/home/dev/project/sessions_app/redaction.py:42\n./config/secret_key.pem ~/.ssh/id_rsa",
    "windows-path": r"C:\Users\dev\AppData\Roaming\tokens\cache.json",
    "paths-named-after-secrets": "tests/test_tokens.py src/auth/password_reset.py keys/api_key_rotation.md",
    "prose": (
        "The token limit was exceeded, so I reduced max_tokens and retried. Passwords are "
        "hashed with argon2, and the secret to fast tests is sharing fixtures. Authorization: "
        "required for admins only. Bearer tokens are short-lived."
    ),
    "python-tokenizer": "token = tokenizer.next()\nwhile token:\n    token = tokenizer.next()",
    "python-settings": (
        'api_key = os.environ["OPENAI_API_KEY"]\n'
        "secret_key = settings.SECRET_KEY\n"
        "password = getpass.getpass()\n"
        "self.api_key = api_key\n"
        "token_count=12\n"
        "password=None\n"
        "if token == expected_token:\n"
        "    sorted(items, key=lambda item: item[1])\n"
    ),
    "python-django-form": (
        "class LoginForm(forms.Form):\n"
        "    password = forms.CharField(widget=forms.PasswordInput)\n"
        "    api_key = serializers.CharField(write_only=True)\n"
    ),
    "python-fstring-header": 'headers = {"Authorization": f"Bearer {token}"}',
    "js-snippet": (
        "const token = await getToken(req);\n"
        "const apiKey = process.env.API_KEY;\n"
        "fetch(url, { headers: { Authorization: `Bearer ${token}` } });\n"
        "const config = { maxTokens: 4000, temperature: 0.7 };"
    ),
    "typescript-types": "interface Auth { token: string; password?: string; apiKey: ApiKey }",
    "max-tokens-yaml": "max_tokens: 4000",
    "max-tokens-json-and-flag": '{"max_tokens": 4000, "input_tokens": 12} --max-tokens 4000',
    "temperature": "temperature=0.7",
    "placeholders": (
        "password: ${DB_PASSWORD}\n"
        "api_key: <your-api-key>\n"
        'secret: "***"\n'
        "token: xxxxxxxx\n"
        "GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}\n"
        "API_KEY=None\n"
        'PASSWORD=""\n'
        "token: null\n"
        "SECRET=changeme\n"
        "OPENAI_API_KEY=your-openai-key-here\n"
        "auth_token = true"
    ),
    "short-values": "PASSWORD=abc\ntoken: 12345\nsecret=off",
    "urls-without-passwords": (
        "http://localhost:8000/api/sessions?page=2 postgres://localhost:5432/app "
        "ssh://git@github.com:22/org/repo.git redis://:${REDIS_PASSWORD}@redis:6379/0 "
        "https://app.slack.com/client/T00000000/C00000000"
    ),
    "word-identifiers-under-key-names": '{"sort_key": "created_at", "cache_key": "sessionData", "primary_key": true}',
    "sk-inside-words": "risk-management-framework-overview-v2 and task-queue-worker-pool-size",
    "shell-output": (
        "-rw-r--r--  1 dev staff  1234 Jun  3 12:01 token.py\n"
        "drwxr-xr-x  4 dev staff   128 Jun  3 12:01 secrets\n"
        "======================== 12 passed in 0.34s ========================"
    ),
    "diff": "-    password = forms.CharField()\n+    password = forms.CharField(max_length=128)",
    "pem-public-key": "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----",
    "code-that-names-secrets": (
        "def login(token: str, password: Optional[str] = None) -> None:\n"
        '    kwargs = {"password": password}\n'
        "    secret = Secret.from_env('X')\n"
        "interface Auth {\n  token: string;\n}\n"
        "class Settings(BaseModel):\n    password: SecretStr\n"
        "API_KEY = DEFAULT_API_KEY\n"
        "const { token } = useAuth();"
    ),
    "schemas-and-markup": (
        '{"password": {"type": "string", "minLength": 8}, "token": "string"}\n'
        '<input type="password" name="password" value="">'
    ),
    "not-secret-key-names": (
        "PUBLIC_KEY=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake0000 dev@host\n"
        "primary_key: id_field_name_x\n"
        "partition_key = 'tenant_id_v2'"
    ),
    "shell-env-and-flags": (
        "PWD=/work/main\nOLDPWD=/root\nTOKEN=$(cat /run/secrets/token)\n"
        "docker login --password-stdin < pw.txt\nlevel=info token_id=abc123"
    ),
    "near-misses": "eyJ alone, AKIA too short AKIA1234, ghp_short, xoxb- nothing, sk-test, AIza123",
}


@pytest.mark.parametrize("text", list(NEGATIVE.values()), ids=list(NEGATIVE))
def test_it_leaves_ordinary_text_byte_identical(text: str) -> None:
    result = redact_text(text)

    assert result.text == text
    assert result.counts == {}


# --- redact_payload ---------------------------------------------------------


def test_redact_payload_redacts_strings_at_any_depth_and_merges_counts() -> None:
    payload = {
        "type": "tool_use",
        "input": {"command": f"export GITHUB_TOKEN={GH_CLASSIC} && make deploy"},
        "output": [
            "ok",
            {"stdout": f"AWS_ACCESS_KEY_ID={AWS_KEY_ID}", "exit_code": 0},
            [f"Authorization: Bearer {OPAQUE_TOKEN}", f"pushed with {GH_USER}"],
        ],
    }

    redacted, counts = redact_payload(payload)

    assert redacted == {
        "type": "tool_use",
        "input": {"command": "export GITHUB_TOKEN=[REDACTED:github_token] && make deploy"},
        "output": [
            "ok",
            {"stdout": "AWS_ACCESS_KEY_ID=[REDACTED:aws_access_key_id]", "exit_code": 0},
            [
                "Authorization: Bearer [REDACTED:authorization_header]",
                "pushed with [REDACTED:github_token]",
            ],
        ],
    }
    assert counts == {"github_token": 2, "aws_access_key_id": 1, "authorization_header": 1}


def test_redact_payload_replaces_values_under_secret_keys() -> None:
    redacted, counts = redact_payload(
        {"api_key": "abc123xyz789", "settings": {"clientSecret": "Fake0Client0Secret0"}}
    )

    assert redacted == {
        "api_key": "[REDACTED:secret_assignment]",
        "settings": {"clientSecret": "[REDACTED:secret_assignment]"},
    }
    assert counts == {"secret_assignment": 2}


def test_redact_payload_prefers_the_most_specific_rule_under_a_secret_key() -> None:
    redacted, counts = redact_payload({"token": GH_CLASSIC, "apiKey": GOOGLE})

    assert redacted == {"token": "[REDACTED:github_token]", "apiKey": "[REDACTED:google_api_key]"}
    assert counts == {"github_token": 1, "google_api_key": 1}


def test_redact_payload_keeps_placeholders_numbers_and_non_secret_keys() -> None:
    payload = {
        "api_key": "",
        "password": "${DB_PASSWORD}",
        "token": None,
        "max_tokens": 4000,
        "token_count": "12",
        "temperature": 0.7,
        "stream": True,
        "sort_key": "created_at",
        "commit": "3f786850e387550fdab836ed7e6dc881de23001b",
    }

    redacted, counts = redact_payload(payload)

    assert redacted == payload
    assert counts == {}


def test_redact_payload_treats_an_authorization_key_as_the_header() -> None:
    redacted, counts = redact_payload({"headers": {"Authorization": f"Bearer {OPAQUE_TOKEN}"}})

    assert redacted == {"headers": {"Authorization": "Bearer [REDACTED:authorization_header]"}}
    assert counts == {"authorization_header": 1}


def test_redact_payload_redacts_dict_keys_that_are_credentials() -> None:
    redacted, counts = redact_payload({GH_CLASSIC: "value", "nested": {AWS_KEY_ID: 1}})

    assert redacted == {
        "[REDACTED:github_token]": "value",
        "nested": {"[REDACTED:aws_access_key_id]": 1},
    }
    assert counts == {"github_token": 1, "aws_access_key_id": 1}


def test_redact_payload_keeps_both_entries_when_two_keys_redact_alike() -> None:
    redacted, counts = redact_payload({GH_CLASSIC: 1, GH_USER: 2})

    assert sorted(redacted.values()) == [1, 2]
    assert all(GH_CLASSIC not in k and GH_USER not in k for k in redacted)
    assert counts == {"github_token": 2}


def test_redact_payload_replaces_numbers_under_secret_names_but_not_booleans() -> None:
    payload = {"pin_password": 123456, "otp_secret": 12.5, "token": True, "max_tokens": 4000}

    redacted, counts = redact_payload(payload)

    assert redacted == {
        "pin_password": "[REDACTED:secret_assignment]",
        "otp_secret": "[REDACTED:secret_assignment]",
        "token": True,
        "max_tokens": 4000,
    }
    assert counts == {"secret_assignment": 2}


def test_a_number_under_a_quoted_secret_name_in_json_text_is_redacted() -> None:
    text = '{"pin_password": 123456, "max_tokens": 4000, "port": 5432}'

    assert redact_text(text).text == (
        '{"pin_password": [REDACTED:secret_assignment], "max_tokens": 4000, "port": 5432}'
    )


def test_redact_payload_redacts_the_value_of_a_sibling_name_value_pair() -> None:
    payload = {
        "env": [
            {"name": "DB_PASSWORD", "value": "Fake-Pw-123"},
            {"name": "LOG_LEVEL", "value": "debug"},
            {"key": "apiKey", "value": 123456},
        ]
    }

    redacted, counts = redact_payload(payload)

    assert redacted == {
        "env": [
            {"name": "DB_PASSWORD", "value": "[REDACTED:secret_assignment]"},
            {"name": "LOG_LEVEL", "value": "debug"},
            {"key": "apiKey", "value": "[REDACTED:secret_assignment]"},
        ]
    }
    assert counts == {"secret_assignment": 2}


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "DB_PASSWORD", "value": "§"}',
        "env:\n  - name: DB_PASSWORD\n    value: §\n",
        '<add key="ClearTextPassword" value="§" />',
        '{"name": "API_TOKEN", "value": "§"}',
    ],
    ids=["json", "k8s-yaml", "xml-attributes", "escaped-json"],
)
def test_redact_text_redacts_the_value_of_a_sibling_name_value_pair(text: str) -> None:
    result = redact_text(text.replace("§", "Fake-Pw-123"))

    assert result.text == text.replace("§", "[REDACTED:secret_assignment]")


def test_a_sibling_pair_with_an_ordinary_name_is_kept() -> None:
    text = '{"name": "LOG_LEVEL", "value": "debugVerbose2"} <add key="Theme" value="dark2x" />'

    assert redact_text(text).text == text


def test_redact_payload_redacts_the_password_of_an_auth_pair() -> None:
    redacted, counts = redact_payload(
        {"auth": ["ci", "hunter2"], "credentials": ("ci", "pw"), "tags": ["a", "b"]}
    )

    assert redacted == {
        "auth": ["ci", "[REDACTED:secret_assignment]"],
        "credentials": ("ci", "[REDACTED:secret_assignment]"),
        "tags": ["a", "b"],
    }
    assert counts == {"secret_assignment": 2}


def test_an_auth_pair_with_an_empty_or_placeholder_password_is_kept() -> None:
    payload = {"auth": ["ci", ""], "credentials": ["ci", "${PASSWORD}"]}

    assert redact_payload(payload) == (payload, {})


@pytest.mark.parametrize("blank", ["\u00a0", "\u202f", " \u00a0"])
def test_non_breaking_spaces_around_the_separator_are_blanks(blank: str) -> None:
    text = f"DB_PASSWORD{blank}={blank}Fake-Pw-123"

    assert redact_text(text).text == f"DB_PASSWORD{blank}={blank}[REDACTED:secret_assignment]"


def test_a_second_bare_copy_of_a_redacted_secret_is_redacted_too() -> None:
    text = "DB_PASSWORD=Fake-Pw-123\nthen I typed Fake-Pw-123 into the prompt"

    result = redact_text(text)

    assert result.text == (
        "DB_PASSWORD=[REDACTED:secret_assignment]\n"
        "then I typed [REDACTED:secret_assignment] into the prompt"
    )
    assert result.counts == {"secret_assignment": 2}


def test_a_secret_found_under_a_key_is_redacted_where_it_appears_bare_in_the_payload() -> None:
    payload = {"password": "Fake-Pw-123", "log": "login with Fake-Pw-123 ok"}

    redacted, counts = redact_payload(payload)

    assert redacted == {
        "password": "[REDACTED:secret_assignment]",
        "log": "login with [REDACTED:secret_assignment] ok",
    }
    assert counts == {"secret_assignment": 2}


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer $(gcloud auth print-access-token)",
        'curl -H "Authorization: Bearer $(gcloud auth print-access-token)" https://x',
        "Authorization: Bearer $TOKEN",
        "Authorization: Bearer ${TOKEN}",
        "const stripe = Stripe('" + STRIPE_PUBLISHABLE + "');",
        "pk_test_" + "Fake3" * 5,
        "GITHUB_TOKEN=ghp_" + "x" * 36,
        "mysql -u root -p shop",
        "docker run -p 8080:80 nginx",
    ],
)
def test_shell_substitutions_publishable_keys_and_masks_stay_byte_identical(text: str) -> None:
    assert redact_text(text) == RedactionResult(text, {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mysql -uroot -pFake-Pw-1 shop", "mysql -uroot -p[REDACTED:cli_secret] shop"),
        ("docker login -u ci -p Fake-Pw-1 reg", "docker login -u ci -p [REDACTED:cli_secret] reg"),
        ("sshpass -p 'Fake-Pw-1' ssh x", "sshpass -p '[REDACTED:cli_secret]' ssh x"),
        ("curl -u ci:Fake-Pw-1 https://x", "curl -u ci:[REDACTED:cli_secret] https://x"),
        ("doctl auth init -t Fake0Token0123", "doctl auth init -t [REDACTED:cli_secret]"),
        ("tool --password -Fake-Pw-1 run", "tool --password [REDACTED:secret_assignment] run"),
        (
            "Authorization: SSWS Fake0Okta0Token",
            "Authorization: SSWS [REDACTED:authorization_header]",
        ),
        (
            'os.environ["X_API_KEY"] = "Fake0Key0123"',
            'os.environ["X_API_KEY"] = "[REDACTED:secret_assignment]"',
        ),
        (
            "export DB_PASSWORD=hunter2.Winter2024",
            "export DB_PASSWORD=[REDACTED:secret_assignment]",
        ),
        ("PGPASSWORD=Fake0Pw0123 psql", "PGPASSWORD=[REDACTED:secret_assignment] psql"),
        ("AUTH_CLIENTSECRET=Fake0Secret0", "AUTH_CLIENTSECRET=[REDACTED:secret_assignment]"),
        ('password="correct horse battery staple"', 'password="[REDACTED:secret_assignment]"'),
        ('api_secret: "Fake0Value9.Part2x"', 'api_secret: "[REDACTED:secret_assignment]"'),
        (
            "Set-Cookie: sessionid=Fake0Session0Value0123; Path=/; HttpOnly",
            "Set-Cookie: sessionid=[REDACTED:cookie]; Path=/; HttpOnly",
        ),
    ],
)
def test_contexts_the_issue_names(text: str, expected: str) -> None:
    assert redact_text(text).text == expected


def test_redact_payload_returns_a_new_structure_and_leaves_the_input_alone() -> None:
    payload = {"a": [f"GITHUB_TOKEN={GH_CLASSIC}", {"b": ("x", f"key {AWS_KEY_ID}")}]}
    before = copy.deepcopy(payload)

    redacted, _ = redact_payload(payload)

    assert payload == before
    assert redacted is not payload
    assert redacted["a"] is not payload["a"]
    assert redacted["a"][1]["b"] == ("x", "key [REDACTED:aws_access_key_id]")


def test_redact_payload_accepts_bare_scalars() -> None:
    assert redact_payload(f"GITHUB_TOKEN={GH_CLASSIC}") == (
        "GITHUB_TOKEN=[REDACTED:github_token]",
        {"github_token": 1},
    )
    assert redact_payload(42) == (42, {})
    assert redact_payload(None) == (None, {})


def test_redact_payload_on_a_large_clean_payload_reports_nothing() -> None:
    payload = {"events": [{"i": i, "text": NEGATIVE["prose"]} for i in range(200)]}

    redacted, counts = redact_payload(payload)

    assert redacted == payload
    assert counts == {}
