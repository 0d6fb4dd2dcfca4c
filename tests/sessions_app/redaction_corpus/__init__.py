"""Generated corpora for the redaction tests.

Positive samples have the documented shape of each provider's credential with
random characters (a fixed seed, so every run sees the same values), plus the
examples the providers and the open scanners document. Each sample is placed
in several contexts an agent transcript carries (bare in prose, a named
assignment, JSON, YAML, a CLI flag). Values are generated when the tests run,
so this file holds no credential-shaped literal beyond the documented examples.

Negative samples are benign strings that must come back byte-identical.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import random
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

SEED = 20240616
PER_FAMILY = 10

UPPER = string.ascii_uppercase
LOWER = string.ascii_lowercase
DIGITS = string.digits
ALNUM = UPPER + LOWER + DIGITS
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
B64URL = ALNUM + "_-"


def rand(rng: random.Random, alphabet: str, n: int) -> str:
    """``n`` random characters that hold at least one digit and one letter."""
    while True:
        value = "".join(rng.choice(alphabet) for _ in range(n))
        has_digit = any(c.isdigit() for c in value) or not set(alphabet) & set(DIGITS)
        has_alpha = any(c.isalpha() for c in value) or not set(alphabet) & set(ALNUM[:52])
        mixed = (
            any(c.isupper() for c in value) and any(c.islower() for c in value)
            if set(alphabet) >= set(UPPER + LOWER)
            else True
        )
        if has_digit and has_alpha and mixed:
            return value


Gen = Callable[[random.Random], str]


@dataclass(frozen=True)
class Family:
    """A kind of credential: how to make one and where it may appear."""

    name: str
    rules: frozenset[str]
    make: Gen
    env: str  # the variable name it is usually held in
    documented: tuple[str, ...] = ()
    # Whether it is recognised by its own shape, so may appear bare in prose.
    shaped: bool = True
    # Extra contexts of its own ("{}" marks the value).
    contexts: tuple[str, ...] = ()
    # Replace the default contexts instead of adding to them.
    only_own_contexts: bool = False


def _family(
    name: str,
    rule: str | tuple[str, ...],
    make: Gen,
    env: str,
    *documented: str,
    shaped: bool = True,
    contexts: tuple[str, ...] = (),
    only_own_contexts: bool = False,
) -> Family:
    rules = frozenset((rule,) if isinstance(rule, str) else rule)
    return Family(name, rules, make, env, documented, shaped, contexts, only_own_contexts)


def _pick(*makers: Gen) -> Gen:
    return lambda rng: rng.choice(makers)(rng)


def _pem(rng: random.Random) -> str:
    kind = rng.choice(["RSA ", "EC ", "OPENSSH ", "", "ENCRYPTED ", "DSA "])
    body = "\n".join(rand(rng, B64, 64) for _ in range(rng.randint(3, 8)))
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----"


def _jwt(rng: random.Random, signed: bool = True) -> str:
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
    claims = json.dumps({"sub": rand(rng, ALNUM, 12), "iat": rng.randint(10**9, 2 * 10**9)})
    payload = base64.urlsafe_b64encode(claims.encode()).decode().rstrip("=")
    signature = rand(rng, B64URL, 43) if signed else ""
    if not signed:
        header = base64.urlsafe_b64encode(b'{"alg":"none"}').decode().rstrip("=")
    return f"{header}.{payload}.{signature}"


def _discord_bot(rng: random.Random) -> str:
    user_id = str(rng.randint(10**17, 10**18 - 1))
    head = base64.b64encode(user_id.encode()).decode().rstrip("=")
    return f"{head}.{rand(rng, B64URL, 6)}.{rand(rng, B64URL, 38)}"


GH = "gh"
GL = "gl"

FAMILIES: tuple[Family, ...] = (
    # --- cloud ---------------------------------------------------------------
    _family(
        "aws_access_key_id",
        "aws_access_key_id",
        lambda r: rng_choice(r, ["AK", "AS"]) + "IA" + rand(r, UPPER + DIGITS, 16),
        "AWS_ACCESS_KEY_ID",
        "AKIAIOSFODNN7EXAMPLE",
    ),
    _family(
        "aws_secret_access_key",
        # The key id next to it has its own marker; a generic "--token" flag
        # names no AWS secret.
        ("aws_secret_access_key", "aws_access_key_id", "secret_assignment"),
        lambda r: rand(r, B64, 40),
        "AWS_SECRET_ACCESS_KEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        shaped=False,
        contexts=(
            "aws configure: key AKIAIOSFODNN7EXAMPLE with secret {} (rotate it)",
            "[default]\naws_secret_access_key = {}\nregion = eu-west-1",
            '{{"Credentials": {{"AccessKeyId": "ASIAFAKE0EXAMPLE1234", "SecretAccessKey": "{}"}}}}',
        ),
    ),
    _family(
        "aws_session_token",
        "aws_session_token",
        lambda r: "IQoJb3JpZ2luX2Vj" + rand(r, B64, 300) + "==",
        "AWS_SESSION_TOKEN",
    ),
    _family(
        "gcp_service_account_key",
        "private_key",
        _pem,
        "GOOGLE_PRIVATE_KEY",
        contexts=('{{"type": "service_account", "private_key": {}, "client_email": "a@b.iam"}}',),
    ),
    _family(
        "google_api_key",
        "google_api_key",
        lambda r: "AIza" + rand(r, B64URL, 35),
        "GOOGLE_API_KEY",
    ),
    _family(
        "azure_storage_key",
        ("azure_storage_key", "secret_assignment"),
        lambda r: rand(r, B64, 86) + "==",
        "AZURE_STORAGE_KEY",
        shaped=False,
        contexts=(
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={};EndpointSuffix=core.windows.net",
            '{{"accountKey": "{}"}}',
            "az storage blob list --account-key {} -c logs",
        ),
    ),
    _family(
        "azure_sas_signature",
        "azure_sas_signature",
        lambda r: rand(r, ALNUM, 40) + "%2B" + rand(r, ALNUM, 3) + "%3D",
        "AZURE_SAS_URL",
        shaped=False,
        contexts=(
            "curl 'https://acct.blob.core.windows.net/logs/a.txt?sv=2022-11-02&ss=b&sig={}&se=2030-01-01'",
            "AZURE_SAS_URL=https://acct.blob.core.windows.net/c?sp=r&sig={}",
            '{{"url": "https://acct.blob.core.windows.net/c?sv=2022-11-02&sig={}"}}',
        ),
        only_own_contexts=True,
    ),
    _family(
        "azure_ad_client_secret",
        "azure_ad_client_secret",
        lambda r: rand(r, ALNUM, 3) + rng_choice(r, DIGITS) + "Q~" + rand(r, ALNUM + "_~.-", 34),
        "AZURE_CLIENT_SECRET",
    ),
    # --- source hosts ----------------------------------------------------------
    _family(
        "github_token",
        "github_token",
        _pick(
            *(lambda r, p=p: GH + p + "_" + rand(r, ALNUM, 36) for p in "pousr"),
            lambda r: "github_pat_" + rand(r, ALNUM, 22) + "_" + rand(r, ALNUM, 59),
        ),
        "GITHUB_TOKEN",
    ),
    _family(
        "gitlab_token",
        "gitlab_token",
        _pick(
            *(
                lambda r, p=p: GL + p + "-" + rand(r, B64URL, 20)
                for p in (
                    "pat",
                    "dt",
                    "rt",
                    "cbt",
                    "ptt",
                    "ft",
                    "soat",
                    "imt",
                    "agent",
                    "oas",
                )
            ),
            lambda r: "GR1348941" + rand(r, B64URL, 20),
        ),
        "GITLAB_TOKEN",
    ),
    _family(
        "bitbucket_token",
        ("bitbucket_token", "atlassian_token"),
        _pick(
            lambda r: "ATBB" + rand(r, ALNUM, 32),
            lambda r: "ATATT3" + rand(r, B64URL + "=", 180),
        ),
        "BITBUCKET_APP_PASSWORD",
    ),
    # --- package registries ----------------------------------------------------
    _family("npm_token", "npm_token", lambda r: "npm_" + rand(r, ALNUM, 36), "NPM_TOKEN"),
    _family(
        "pypi_token",
        "pypi_token",
        lambda r: "pypi-AgEIcHlwaS5vcmc" + rand(r, B64URL, 70),
        "TWINE_PASSWORD",
    ),
    _family(
        "rubygems_token",
        "rubygems_token",
        lambda r: "rubygems_" + rand(r, HEX, 48),
        "GEM_HOST_API_KEY",
    ),
    _family(
        "nuget_key",
        "nuget_key",
        lambda r: "oy2" + rand(r, LOWER + DIGITS, 43),
        "NUGET_API_KEY",
    ),
    _family(
        "dockerhub_token",
        "dockerhub_token",
        lambda r: "dckr_pat_" + rand(r, B64URL, 27),
        "DOCKERHUB_TOKEN",
    ),
    # --- AI providers ----------------------------------------------------------
    _family(
        "openai_key",
        "openai_key",
        _pick(
            lambda r: "sk-" + rand(r, ALNUM, 48),
            lambda r: "sk-proj-" + rand(r, B64URL, 120),
            lambda r: "sk-svcacct-" + rand(r, B64URL, 80),
        ),
        "OPENAI_API_KEY",
    ),
    _family(
        "anthropic_key",
        "anthropic_key",
        lambda r: "sk-ant-api03-" + rand(r, B64URL, 93) + "AA",
        "ANTHROPIC_API_KEY",
    ),
    _family(
        "huggingface_token",
        "huggingface_token",
        _pick(
            lambda r: "hf_" + rand(r, UPPER + LOWER, 34),
            lambda r: "api_org_" + rand(r, UPPER + LOWER, 34),
        ),
        "HF_TOKEN",
    ),
    _family(
        "cohere_key",
        "secret_assignment",
        lambda r: rand(r, ALNUM, 40),
        "COHERE_API_KEY",
        shaped=False,
    ),
    _family("groq_key", "groq_key", lambda r: "gsk_" + rand(r, ALNUM, 52), "GROQ_API_KEY"),
    _family(
        "replicate_token",
        "replicate_token",
        lambda r: "r8_" + rand(r, ALNUM, 37),
        "REPLICATE_API_TOKEN",
    ),
    _family(
        "perplexity_key",
        "perplexity_key",
        lambda r: "pplx-" + rand(r, ALNUM, 48),
        "PERPLEXITY_API_KEY",
    ),
    # --- chat and mail ---------------------------------------------------------
    _family(
        "slack_token",
        "slack_token",
        _pick(
            *(
                lambda r, p=p: (
                    "xo" + p + "-" + str(r.randint(10**10, 10**12)) + "-" + rand(r, ALNUM, 24)
                )
                for p in ("xb", "xp", "xa", "xe", "xr")
            ),
            lambda r: "xapp-1-" + rand(r, UPPER + DIGITS, 11) + "-" + rand(r, ALNUM, 40),
        ),
        "SLACK_BOT_TOKEN",
    ),
    _family(
        "slack_webhook",
        "slack_webhook",
        lambda r: (
            "T"
            + rand(r, UPPER + DIGITS, 8)
            + "/B"
            + rand(r, UPPER + DIGITS, 8)
            + "/"
            + rand(r, ALNUM, 24)
        ),
        "SLACK_WEBHOOK_URL",
        shaped=False,
        contexts=(
            "SLACK_WEBHOOK_URL=https://hooks.slack.com/services/{}",
            "curl -X POST https://hooks.slack.com/services/{} -d @msg.json",
            '{{"webhook": "https://hooks.slack.com/services/{}"}}',
        ),
        only_own_contexts=True,
    ),
    _family("discord_bot_token", "discord_bot_token", _discord_bot, "DISCORD_BOT_TOKEN"),
    _family(
        "discord_webhook",
        "discord_webhook",
        lambda r: rand(r, B64URL, 68),
        "DISCORD_WEBHOOK",
        shaped=False,
        contexts=(
            "DISCORD_WEBHOOK=https://discord.com/api/webhooks/123456789012345678/{}",
            'curl -d \'{{"content":"hi"}}\' https://discordapp.com/api/webhooks/99887766554433/{}',
            '{{"hook": "https://discord.com/api/webhooks/1234567890/{}"}}',
        ),
        only_own_contexts=True,
    ),
    _family(
        "twilio_api_key",
        "twilio_api_key",
        lambda r: "SK" + rand(r, HEX, 32),
        "TWILIO_API_KEY",
    ),
    _family(
        "twilio_auth_token",
        ("twilio_auth_token", "secret_assignment"),
        lambda r: rand(r, HEX, 32),
        "TWILIO_AUTH_TOKEN",
        shaped=False,
    ),
    _family(
        "sendgrid_key",
        "sendgrid_key",
        lambda r: "SG." + rand(r, B64URL, 22) + "." + rand(r, B64URL, 43),
        "SENDGRID_API_KEY",
    ),
    _family(
        "mailgun_key",
        "mailgun_key",
        lambda r: "key-" + rand(r, HEX, 32),
        "MAILGUN_API_KEY",
    ),
    _family(
        "telegram_bot_token",
        "telegram_bot_token",
        lambda r: str(r.randint(10**8, 10**10 - 1)) + ":AA" + rand(r, B64URL, 33),
        "TELEGRAM_BOT_TOKEN",
    ),
    # --- payments --------------------------------------------------------------
    _family(
        "stripe_key",
        "stripe_key",
        _pick(
            *(
                lambda r, p=p: p + rand(r, ALNUM, 24)
                for p in ("sk_live_", "rk_live_", "sk_test_", "rk_test_")
            )
        ),
        "STRIPE_SECRET_KEY",
    ),
    # --- infrastructure -------------------------------------------------------
    _family(
        "digitalocean_token",
        "digitalocean_token",
        _pick(*(lambda r, p=p: p + "_v1_" + rand(r, HEX, 64) for p in ("dop", "doo", "dor"))),
        "DIGITALOCEAN_TOKEN",
    ),
    _family(
        "heroku_key",
        ("heroku_key", "secret_assignment"),
        _pick(lambda r: "HRKU-AA" + rand(r, B64URL, 58)),
        "HEROKU_API_KEY",
    ),
    _family(
        "heroku_legacy_key",
        "secret_assignment",
        lambda r: str(uuid.UUID(int=r.getrandbits(128))),
        "HEROKU_API_KEY",
        shaped=False,
    ),
    _family(
        "vercel_token",
        "vercel_token",
        lambda r: "vc" + rng_choice(r, "pikra") + "_" + rand(r, ALNUM, 56),
        "VERCEL_TOKEN",
    ),
    _family(
        "netlify_token",
        "netlify_token",
        lambda r: "nfp_" + rand(r, ALNUM, 36),
        "NETLIFY_AUTH_TOKEN",
    ),
    _family(
        "cloudflare_token",
        "secret_assignment",
        lambda r: rand(r, B64URL, 40),
        "CLOUDFLARE_API_TOKEN",
        shaped=False,
    ),
    _family(
        "datadog_key",
        "secret_assignment",
        lambda r: rand(r, HEX, 32),
        "DD_API_KEY",
        shaped=False,
    ),
    _family(
        "sentry_token",
        "sentry_token",
        lambda r: "sntryu_" + rand(r, HEX, 64),
        "SENTRY_AUTH_TOKEN",
    ),
    _family(
        "sentry_dsn_secret",
        "url_password",
        lambda r: rand(r, HEX, 32),
        "SENTRY_DSN",
        shaped=False,
        contexts=(
            "SENTRY_DSN=https://"
            + "0123456789abcdef0123456789abcdef"
            + ":{}@o1.ingest.sentry.io/42",
            'sentry_sdk.init(dsn="https://pub:{}@sentry.example.com/7")',
            '{{"dsn": "https://abc:{}@sentry.io/1"}}',
        ),
        only_own_contexts=True,
    ),
    _family(
        "vault_token",
        "vault_token",
        _pick(
            lambda r: "hvs." + rand(r, B64URL, 95),
            lambda r: "hvb." + rand(r, B64URL, 140),
            lambda r: "s." + rand(r, ALNUM, 24),
        ),
        "VAULT_TOKEN",
    ),
    # --- further prefixed tokens (one table in the module) ---------------------
    _family("xai_key", "xai_key", lambda r: "xai-" + rand(r, ALNUM, 80), "XAI_API_KEY"),
    _family("nvidia_key", "nvidia_key", lambda r: "nvapi-" + rand(r, B64URL, 64), "NVIDIA_API_KEY"),
    _family(
        "tavily_key", "tavily_key", lambda r: "tvly-dev-" + rand(r, ALNUM, 32), "TAVILY_API_KEY"
    ),
    _family(
        "pinecone_key",
        "pinecone_key",
        lambda r: "pcsk_" + rand(r, ALNUM, 6) + "_" + rand(r, ALNUM, 60),
        "PINECONE_API_KEY",
    ),
    _family(
        "langsmith_key",
        "langsmith_key",
        lambda r: "lsv2_pt_" + rand(r, HEX, 32) + "_" + rand(r, HEX, 10),
        "LANGSMITH_API_KEY",
    ),
    _family(
        "brevo_key",
        "brevo_key",
        lambda r: "xkeysib-" + rand(r, HEX, 64) + "-" + rand(r, ALNUM, 16),
        "BREVO_API_KEY",
    ),
    _family(
        "stripe_webhook_secret",
        "stripe_webhook_secret",
        lambda r: "whsec_" + rand(r, ALNUM, 32),
        "STRIPE_WEBHOOK_SECRET",
    ),
    _family(
        "square_token",
        "square_token",
        _pick(
            lambda r: "sq0atp-" + rand(r, B64URL, 22),
            lambda r: "EAAA" + rand(r, B64URL, 60),
        ),
        "SQUARE_ACCESS_TOKEN",
    ),
    _family(
        "grafana_token",
        "grafana_token",
        _pick(
            lambda r: "glsa_" + rand(r, ALNUM, 32) + "_" + rand(r, HEX, 8),
            lambda r: "glc_" + rand(r, ALNUM, 120),
        ),
        "GRAFANA_TOKEN",
    ),
    _family(
        "newrelic_key",
        "newrelic_key",
        lambda r: "NRAK-" + rand(r, UPPER + DIGITS, 27),
        "NEW_RELIC_API_KEY",
    ),
    _family(
        "doppler_token", "doppler_token", lambda r: "dp.pt." + rand(r, ALNUM, 43), "DOPPLER_TOKEN"
    ),
    _family(
        "dynatrace_token",
        "dynatrace_token",
        lambda r: "dt0c01." + rand(r, UPPER + DIGITS, 24) + "." + rand(r, ALNUM, 64),
        "DT_API_TOKEN",
    ),
    _family(
        "pulumi_token", "pulumi_token", lambda r: "pul-" + rand(r, HEX, 40), "PULUMI_ACCESS_TOKEN"
    ),
    _family(
        "postman_key",
        "postman_key",
        lambda r: "PMAK-" + rand(r, HEX, 24) + "-" + rand(r, HEX, 34),
        "POSTMAN_API_KEY",
    ),
    _family(
        "shopify_token",
        "shopify_token",
        lambda r: "shp" + rng_choice(r, ["at", "ca", "pa", "ss"]) + "_" + rand(r, HEX, 32),
        "SHOPIFY_ACCESS_TOKEN",
    ),
    _family(
        "linear_key", "linear_key", lambda r: "lin_api_" + rand(r, ALNUM, 40), "LINEAR_API_KEY"
    ),
    _family(
        "notion_token",
        "notion_token",
        lambda r: "ntn_" + str(r.randint(10**10, 10**11 - 1)) + rand(r, ALNUM, 35),
        "NOTION_TOKEN",
    ),
    _family(
        "planetscale_token",
        "planetscale_token",
        lambda r: "pscale_tkn_" + rand(r, ALNUM, 43),
        "PLANETSCALE_SERVICE_TOKEN",
    ),
    _family(
        "supabase_token",
        "supabase_token",
        lambda r: "sbp_" + rand(r, HEX, 40),
        "SUPABASE_ACCESS_TOKEN",
    ),
    _family("flyio_token", "flyio_token", lambda r: "fo1_" + rand(r, B64URL, 43), "FLY_API_TOKEN"),
    _family(
        "google_oauth_secret",
        "google_oauth_secret",
        lambda r: "GOCSPX-" + rand(r, B64URL, 28),
        "GOOGLE_CLIENT_SECRET",
    ),
    _family(
        "google_oauth_token",
        "google_oauth_token",
        lambda r: "ya29." + rand(r, B64URL, 120),
        "GOOGLE_ACCESS_TOKEN",
    ),
    _family(
        "aws_bedrock_key",
        "aws_bedrock_key",
        lambda r: "ABSKQmVkcm9ja0FQSUtleS" + rand(r, B64, 110) + "=",
        "AWS_BEARER_TOKEN_BEDROCK",
    ),
    _family(
        "facebook_token",
        "facebook_token",
        _pick(
            lambda r: "EAAC" + rand(r, ALNUM, 160),
            lambda r: str(r.randint(10**14, 10**15 - 1)) + "|" + rand(r, B64URL, 27),
        ),
        "FACEBOOK_ACCESS_TOKEN",
    ),
    _family(
        "sourcegraph_token",
        "sourcegraph_token",
        lambda r: "sgp_" + rand(r, HEX + "ABCDEF", 16) + "_" + rand(r, HEX, 40),
        "SRC_ACCESS_TOKEN",
    ),
    _family(
        "onepassword_token",
        "onepassword_token",
        lambda r: "ops_eyJ" + rand(r, B64, 300),
        "OP_SERVICE_ACCOUNT_TOKEN",
    ),
    _family(
        "intra42_secret",
        "intra42_secret",
        lambda r: "s-s4t2" + rng_choice(r, ["ud", "af"]) + "-" + rand(r, HEX, 64),
        "FT_CLIENT_SECRET",
    ),
    _family(
        "mailchimp_key",
        "mailchimp_key",
        lambda r: rand(r, HEX, 32) + "-us" + str(r.randint(1, 21)),
        "MAILCHIMP_API_KEY",
    ),
    # --- generic shapes --------------------------------------------------------
    _family(
        "database_url",
        "url_password",
        lambda r: rand(r, ALNUM + "!_.-", 16),
        "DATABASE_URL",
        shaped=False,
        contexts=(
            "DATABASE_URL=postgres://app:{}@db.internal:5432/app",
            "mysql://root:{}@127.0.0.1:3306/shop",
            '{{"broker": "amqp://svc:{}@rabbit:5672//"}}',
            "mongodb+srv://svc:{}@cluster0.example.net/db?retryWrites=true",
        ),
        only_own_contexts=True,
    ),
    _family("jwt", "jwt", _jwt, "ID_TOKEN"),
    _family("jwt_unsigned", "jwt", lambda r: _jwt(r, signed=False), "ID_TOKEN"),
    _family("jwt_no_signature", "jwt", lambda r: _jwt(r, signed=False)[:-1], "ID_TOKEN"),
    _family(
        "private_key",
        "private_key",
        _pem,
        "SSH_PRIVATE_KEY",
        shaped=True,
        contexts=(
            "cat ~/.ssh/id_rsa\n{}\n$ ",
            "Here is the deploy key:\n\n{}\n\nUse it carefully.",
            "SSH_PRIVATE_KEY='{}'",
        ),
        only_own_contexts=True,
    ),
    _family(
        "authorization_header",
        "authorization_header",
        lambda r: rand(r, B64URL, rng_len(r)),
        "AUTH_HEADER",
        shaped=False,
        contexts=(
            "curl -H 'Authorization: Bearer {}' https://api.example.com",
            "Authorization: SSWS {}",
            '{{"headers": {{"Authorization": "Api-Token {}"}}}}',
            "Proxy-Authorization: Basic {}",
            "authorization: token {}",
        ),
        only_own_contexts=True,
    ),
    _family(
        "cookie",
        "cookie",
        lambda r: rand(r, ALNUM, 32),
        "COOKIE",
        shaped=False,
        contexts=(
            "Set-Cookie: sessionid={}; Path=/; HttpOnly; Secure",
            "curl -H 'Cookie: csrftoken=abc; session={}' https://app.example.com",
            '{{"headers": {{"Cookie": "_gitlab_session={}"}}}}',
        ),
        only_own_contexts=True,
    ),
    _family(
        "cli_secret",
        "cli_secret",
        lambda r: rand(r, ALNUM + "!#%^", 14),
        "CLI",
        shaped=False,
        contexts=(
            "mysql -uroot -p{} shop",
            "echo hi | docker login -u ci -p {} registry.example.com",
            "sshpass -p '{}' ssh deploy@10.0.0.5",
            "curl -u admin:{} https://ci.example.com/api",
            "redis-cli -h cache -a {} ping",
        ),
        only_own_contexts=True,
    ),
    _family(
        "secret_assignment",
        "secret_assignment",
        lambda r: rand(r, ALNUM + "!@#%^.-", 18),
        "DB_PASSWORD",
        shaped=False,
        contexts=(
            "export PGPASSWORD={}",
            "AUTH_CLIENTSECRET={}",
            'os.environ["X_API_KEY"] = "{}"',
            "[database]\npassword = {}\n",
            '[tool.poetry]\ntoken = "{}"',
            '<add key="ClearTextPassword" value="{}" />',
            '{{"name": "DB_PASSWORD", "value": "{}"}}',
            "env:\n  - name: API_TOKEN\n    value: {}\n",
            "DB_PASSWORD\u00a0=\u00a0{}",
            "tool --password={} --user app",
            'SECRET_KEY_BASE="{}"',
        ),
    ),
)


def rng_choice(rng: random.Random, options: str | list[str]) -> str:
    return rng.choice(options)


def rng_len(rng: random.Random) -> int:
    return rng.randint(24, 64)


def default_contexts(family: Family) -> tuple[str, ...]:
    env = family.env
    lower = env.lower()
    named = (
        f"export {env}={{}}",
        f'{{{{"tool": "bash", "output": {{{{"{lower}": "{{}}"}}}}}}}}',
        f"deploy:\n  {lower}: {{}}\n  region: eu-west-1\n",
        "ci-tool publish --token {} --dry-run",
    )
    bare = ("Found {} in the build log, so I am rotating it now.",) if family.shaped else ()
    return bare + named


@dataclass(frozen=True)
class Sample:
    family: str
    rules: frozenset[str]
    secret: str
    text: str
    context: int = field(default=0)


@functools.cache
def positive_samples() -> tuple[Sample, ...]:
    rng = random.Random(SEED)
    samples: list[Sample] = []
    for family in FAMILIES:
        values = list(family.documented)
        seen = set(values)
        while len(values) < PER_FAMILY + len(family.documented):
            value = family.make(rng)
            if value not in seen:
                seen.add(value)
                values.append(value)
        contexts = family.contexts
        if not family.only_own_contexts:
            contexts = default_contexts(family) + contexts
        for value in values:
            for i, context in enumerate(contexts):
                inserted = json.dumps(value) if context.startswith('{{"type": "service') else value
                samples.append(
                    Sample(family.name, family.rules, value, context.format(inserted), i)
                )
    return tuple(samples)


# --- negatives ---------------------------------------------------------------


def negative_samples() -> dict[str, str]:
    rng = random.Random(SEED + 1)
    out: dict[str, str] = {}

    def add(prefix: str, texts: list[str]) -> None:
        for i, text in enumerate(texts):
            out[f"{prefix}-{i}"] = text

    def sha(n: int = 8) -> str:
        return hashlib.sha1(rng.randbytes(n)).hexdigest()

    add("git-sha", [f"commit {sha()}\nMerge: {sha()[:7]} {sha()[:7]}" for _ in range(15)])
    add(
        "git-log-oneline",
        [f"{sha()[:10]} Fix the flaky retry test ({sha()[:7]})" for _ in range(5)],
    )
    add(
        "uuid",
        [
            f"request_id={uuid.UUID(bytes=rng.randbytes(16))} trace={uuid.UUID(bytes=rng.randbytes(16))}"
            for _ in range(15)
        ],
    )
    add(
        "sha256",
        [
            f"sha256:{hashlib.sha256(rng.randbytes(8)).hexdigest()}  dist/app-{i}.tar.gz"
            for i in range(10)
        ],
    )
    add(
        "docker-digest",
        [f"image@sha256:{hashlib.sha256(rng.randbytes(8)).hexdigest()}" for _ in range(5)],
    )
    add(
        "base64-image",
        [
            f'{{"type": "image", "data": "data:image/png;base64,{base64.b64encode(rng.randbytes(3000)).decode()}"}}'
            for _ in range(5)
        ],
    )
    add(
        "md5-etag",
        [f'ETag: "{hashlib.md5(rng.randbytes(8)).hexdigest()}"' for _ in range(5)],
    )
    masks = [
        GH + "p_" + "x" * 36,
        GH + "p_" + "X" * 36,
        "sk-...",
        "sk-proj-****************",
        "****",
        "********",
        "AKIA" + "X" * 16,
        "xoxb-xxxxxxxxxxxx-xxxxxxxxxxxx",
        GL + "pat-xxxxxxxxxxxxxxxxxxxx",
        "npm_" + "x" * 36,
        "hf_" + "x" * 34,
        "SG." + "x" * 22 + "." + "x" * 43,
        "•••••••• (hidden)",
        "sk_live_" + "*" * 24,
        "AIza" + "X" * 35,
    ]
    add("mask-bare", masks)
    add("mask-env", [f"API_KEY={m}" for m in masks[:10]])
    add("mask-json", [json.dumps({"token": m}) for m in masks[:10]])
    placeholders = [
        "<YOUR_TOKEN>",
        "${TOKEN}",
        "$TOKEN",
        "{{ token }}",
        "changeme",
        "your-api-key-here",
        "<your-api-key>",
        "${{ secrets.NPM_TOKEN }}",
        "%(password)s",
        "{password}",
        "REPLACE_ME_here",
        "${DB_PASSWORD:-}",
        "$(cat /run/secrets/db)",
        "none",
        "null",
    ]
    add("placeholder-env", [f"API_KEY={p}" for p in placeholders])
    add("placeholder-yaml", [f"auth:\n  password: {p}\n" for p in placeholders])
    add("placeholder-json", [json.dumps({"secret": p}) for p in placeholders])
    add(
        "empty",
        [
            "API_KEY=",
            'PASSWORD=""',
            "token:",
            '{"api_key": ""}',
            "SECRET_KEY=\nDEBUG=1",
            "password: ''",
            "export GITHUB_TOKEN=",
            "--token= ",
        ],
    )
    add(
        "shell-substitution",
        [
            'curl -H "Authorization: Bearer $(gcloud auth print-access-token)" https://x.googleapis.com',
            "Authorization: Bearer $(gcloud auth print-access-token)",
            "Authorization: Bearer $TOKEN",
            "Authorization: Bearer ${GITHUB_TOKEN}",
            'curl -H "Authorization: token $GH_TOKEN" https://api.github.com',
            "TOKEN=$(vault read -field=token secret/ci)",
            "export PASSWORD=`cat pw.txt`",
            "docker login -u ci -p $DOCKER_PASSWORD",
            "mysql -u root -p$MYSQL_ROOT_PASSWORD",
            "curl -u $USER:$PASS https://x",
        ],
    )
    add(
        "counts",
        [
            "token_count=512",
            "max_tokens=4000",
            '{"max_tokens": 4000, "input_tokens": 1234, "output_tokens": 99}',
            "--max-tokens 4000",
            "tokens: 12000",
            "password_min_length=12",
            "num_keys=3",
            "token_limit: 8192",
        ],
    )
    add(
        "env-reading-code",
        [
            'api_key = os.environ["API_KEY"]',
            'token = os.getenv("TOKEN")',
            "const token = process.env.TOKEN;",
            'password = os.environ.get("DB_PASSWORD", "")',
            "secret = settings.SECRET_KEY",
            "API_KEY = env('API_KEY')",
            'GITHUB_TOKEN = os.environ["GITHUB_TOKEN"]',
            'let apiKey = std::env::var("API_KEY")?;',
            'token := os.Getenv("TOKEN")',
            "export API_KEY=$API_KEY",
        ],
    )
    add(
        "code",
        [
            "token = tokenizer.next()",
            "value = self.cache.get(key)",
            "def check(password: str) -> bool:",
            "password = forms.CharField(widget=forms.PasswordInput)",
            "if token is None:\n    raise AuthError('missing token')",
            "for key, value in headers.items():",
            "auth = HTTPBasicAuth(user, password)",
            "credentials = service_account.Credentials.from_service_account_file(path)",
            "fetch(url, { credentials: 'include' })",
            "sig = inspect.signature(func)",
            "secret_name = 'prod/db'",
            "{ name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'db', key: 'pw' } } }",
            "- name: DB_PASSWORD\n  valueFrom:\n    secretKeyRef:\n      name: db\n      key: password",
            '{"name": "LOG_LEVEL", "value": "debugVerbose2"}',
            "docker run -p 8080:80 nginx",
            "mysql -u root -p shop",
            "ssh -p 2222 deploy@host",
            "tar -tvf backup.tar",
            "git log -p --stat",
            "auth: oauth2",
            'credentials: "include"',
            "Authorization: required for admins only.",
        ],
    )
    add(
        "public-material",
        [
            "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----",
            "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBa\n-----END CERTIFICATE-----",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGv1x8ZQ dev@laptop",
            "PUBLIC_KEY=ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ dev@host",
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\nmQENBF0\n-----END PGP PUBLIC KEY BLOCK-----",
        ],
    )
    add(
        "publishable",
        [f"Stripe('{p}{rand(rng, ALNUM, 24)}')" for p in ("pk_live_", "pk_test_") * 5],
    )
    add(
        "prose",
        [
            "Passwords are hashed with argon2 before they are stored.",
            "The secret to fast tests is sharing fixtures.",
            "Rotate the token every 90 days and never paste it into chat.",
            "I reset the password for the staging user as requested.",
            "Bearer tokens are short-lived; refresh them before they expire.",
            "The API key field is optional for local development.",
            "Use a passphrase of four random words.",
            "The password: must be at least 12 characters long.",
            "Authorization: Bearer tokens are rejected after logout.",
            "secret management is handled by Vault in production.",
            "Set the token in your shell first, then run make deploy.",
            "The key rotation job runs nightly at 02:00 UTC.",
        ],
    )
    add(
        "messages-under-secret-names",
        [
            '{"password": "Password is required"}',
            'password_error: "Your password is too short."',
            "PASSWORD_HELP='Enter your current password'",
        ],
    )
    add(
        "misc",
        [
            "https://github.com/org/repo/pull/123",
            "ls -la ~/.aws/credentials",
            "os.path.join(base, 'secrets.json')",
            "2025-06-03T12:01:00Z INFO session=3f7a2c1 status=200 duration_ms=31",
            "risk-management-framework-overview-v2",
            "key-value store",
            "The forms.CharField and items.SomethingLongEnoughHere appear",
            "sk-learn-style-pipeline-helpers",
            "version: 3.11.7",
            "temperature=0.7",
        ],
    )
    return out
